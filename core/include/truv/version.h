/* The library's version, as a string ("0.1.0"). */
#ifndef TRUV_VERSION_H
#define TRUV_VERSION_H
#define TRUV_API __attribute__((visibility("default")))
TRUV_API const char *truv_version(void);
#endif
