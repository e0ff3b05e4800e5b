/* Time parsing (see truv/time.h): ISO 8601 timestamps in Truv's documents,
 * HTTP dates and delta-seconds in Retry-After, and Truv's "available in N
 * seconds" text. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "truv/time.h"

/* Days since 1970-01-01 for a proleptic Gregorian date (H. Hinnant's
 * days_from_civil). */
static long days_from_civil(long y, unsigned m, unsigned d) {
  long era;
  unsigned yoe, doy, doe;
  y -= m <= 2;
  era = (y >= 0 ? y : y - 399) / 400;
  yoe = (unsigned)(y - era * 400);
  doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + (long)doe - 719468;
}

/* Reads exactly n digits. */
static int digits(const char **s, int n, int *out) {
  int v = 0, i;
  for (i = 0; i < n; i++) {
    if (!isdigit((unsigned char)(*s)[i])) return -1;
    v = v * 10 + ((*s)[i] - '0');
  }
  *s += n;
  *out = v;
  return 0;
}

static double epoch(int y, int mo, int d, int h, int mi, int sec) {
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60) return -1;
  return (double)days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400.0 + h * 3600.0 + mi * 60.0 +
         sec;
}

double truv_parse_time(const char *s) {
  int y, mo, d, h = 0, mi = 0, sec = 0, oh, om;
  double frac = 0, scale = 0.1, t;
  if (!s || digits(&s, 4, &y) || *s++ != '-' || digits(&s, 2, &mo) || *s++ != '-' ||
      digits(&s, 2, &d))
    return -1;
  if (*s == '\0') return epoch(y, mo, d, 0, 0, 0);
  if (*s != 'T' && *s != 't' && *s != ' ') return -1;
  s++;
  if (digits(&s, 2, &h) || *s++ != ':' || digits(&s, 2, &mi)) return -1;
  if (*s == ':') {
    s++;
    if (digits(&s, 2, &sec)) return -1;
  }
  if (*s == '.' || *s == ',') {
    for (s++; isdigit((unsigned char)*s); s++, scale /= 10) frac += (*s - '0') * scale;
  }
  if ((t = epoch(y, mo, d, h, mi, sec)) < 0 && y >= 1970) return -1;
  t += frac;
  if (*s == 'Z' || *s == 'z') return s[1] ? -1 : t;
  if (*s == '\0') return t; /* no offset: Truv's timestamps are UTC */
  if (*s != '+' && *s != '-') return -1;
  {
    int sign = *s++ == '-' ? -1 : 1;
    if (digits(&s, 2, &oh)) return -1;
    if (*s == ':') s++;
    if (digits(&s, 2, &om) || *s) return -1;
    return t - sign * (oh * 3600.0 + om * 60.0);
  }
}

static int month_of(const char *s) {
  static const char names[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
  int i;
  for (i = 0; i < 12; i++)
    if (strncasecmp(s, names + 3 * i, 3) == 0) return i + 1;
  return 0;
}

/* IMF-fixdate "Sun, 06 Nov 1994 08:49:37 GMT", RFC 850
 * "Sunday, 06-Nov-94 08:49:37 GMT" and asctime "Sun Nov  6 08:49:37 1994". */
static double parse_http_date(const char *s) {
  int d, mo, y, h, mi, sec;
  const char *comma = strchr(s, ',');
  if (comma) {
    s = comma + 1;
    while (*s == ' ') s++;
    if (digits(&s, 2, &d)) return -1;
    if (*s != ' ' && *s != '-') return -1;
    if (!(mo = month_of(++s))) return -1;
    s += 3;
    if (*s != ' ' && *s != '-') return -1;
    s++;
    if (digits(&s, 4, &y)) { /* RFC 850: two-digit year */
      if (digits(&s, 2, &y)) return -1;
      y += y < 70 ? 2000 : 1900;
    }
    if (*s++ != ' ' || digits(&s, 2, &h) || *s++ != ':' || digits(&s, 2, &mi) || *s++ != ':' ||
        digits(&s, 2, &sec))
      return -1;
    return epoch(y, mo, d, h, mi, sec);
  }
  /* asctime: the day is two characters, space-padded */
  if (strlen(s) < 24 || s[3] != ' ' || !(mo = month_of(s + 4)) || s[7] != ' ') return -1;
  s += 8;
  if (*s == ' ') s++;
  if (!isdigit((unsigned char)*s)) return -1;
  d = *s++ - '0';
  if (isdigit((unsigned char)*s)) d = d * 10 + (*s++ - '0');
  if (*s++ != ' ' || digits(&s, 2, &h) || *s++ != ':' || digits(&s, 2, &mi) || *s++ != ':' ||
      digits(&s, 2, &sec) || *s++ != ' ' || digits(&s, 4, &y))
    return -1;
  return epoch(y, mo, d, h, mi, sec);
}

double truv_parse_retry_after(const char *value, double now) {
  const char *s = value;
  char *end;
  double secs;
  if (!s) return 0;
  while (*s == ' ') s++;
  if (isdigit((unsigned char)*s)) {
    secs = strtod(s, &end);
    while (*end == ' ') end++;
    if (*end == '\0' && secs >= 0 && secs < 366.0 * 86400) return now + secs;
    return 0;
  }
  secs = parse_http_date(s);
  return secs > 0 ? secs : 0;
}

double truv_parse_available_in(const char *message) {
  static const char key[] = "available in ";
  const char *p;
  char *end;
  double n;
  size_t i;
  if (!message) return -1;
  for (p = message; *p; p++) {
    for (i = 0; key[i] && tolower((unsigned char)p[i]) == key[i]; i++) {
    }
    if (key[i]) continue;
    n = strtod(p + i, &end);
    if (end == p + i || n < 0) continue;
    while (*end == ' ') end++;
    if (strncasecmp(end, "second", 6) == 0) return n;
  }
  return -1;
}
