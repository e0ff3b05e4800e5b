/* The library's version string, e.g. "0.1.0". */
#ifndef TRUV_VERSION_H
#define TRUV_VERSION_H

#include "truv/common.h"

TRUV_API const char *truv_version(void);

#endif
