#include "truv/version.h"
const char *truv_version(void) {
  return TRUV_VERSION;
}
