/* timeutil: see timeutil.h. Civil-date algorithms after H. Hinnant's
 * "chrono-compatible low-level date algorithms". */
#include "timeutil.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

int64_t time_days_from_civil(int64_t y, unsigned m, unsigned d) {
  int64_t era;
  unsigned yoe;
  unsigned doy;
  unsigned doe;
  y -= m <= 2;
  era = (y >= 0 ? y : y - 399) / 400;
  yoe = (unsigned)(y - era * 400);
  doy = (153 * (m + (m > 2 ? -3u : 9u)) + 2) / 5 + d - 1;
  doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + (int64_t)doe - 719468;
}

void time_civil_from_days(int64_t days, int64_t *y, unsigned *m, unsigned *d) {
  int64_t era;
  unsigned doe;
  unsigned yoe;
  unsigned doy;
  unsigned mp;
  days += 719468;
  era = (days >= 0 ? days : days - 146096) / 146097;
  doe = (unsigned)(days - era * 146097);
  yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  mp = (5 * doy + 2) / 153;
  *d = doy - (153 * mp + 2) / 5 + 1;
  *m = mp < 10 ? mp + 3 : mp - 9;
  *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

int64_t time_day_of(sb_time t) {
  int64_t day = t / SB_DAY;
  return (t % SB_DAY < 0) ? day - 1 : day;
}

static void split(sb_time t, int64_t *days, unsigned *hh, unsigned *mm, unsigned *ss,
                  unsigned *us) {
  int64_t rest;
  *days = time_day_of(t);
  rest = t - *days * SB_DAY;
  *us = (unsigned)(rest % SB_USEC);
  rest /= SB_USEC;
  *ss = (unsigned)(rest % 60);
  *mm = (unsigned)(rest / 60 % 60);
  *hh = (unsigned)(rest / 3600);
}

static void put2(char *p, unsigned v) {
  p[0] = (char)('0' + v / 10 % 10);
  p[1] = (char)('0' + v % 10);
}

static size_t put_stamp(sb_time t, char *out, char sep, const char *zone) {
  int64_t days, y;
  unsigned hh, mm, ss, us, mo, d;
  unsigned yy;
  size_t zl;
  char *p;
  split(t, &days, &hh, &mm, &ss, &us);
  time_civil_from_days(days, &y, &mo, &d);
  if (y < 0 || y > 9999) y = y < 0 ? 0 : 9999;
  yy = (unsigned)y;
  p = out;
  put2(p, yy / 100);
  put2(p + 2, yy % 100);
  p[4] = '-';
  put2(p + 5, mo);
  p[7] = '-';
  put2(p + 8, d);
  p[10] = sep;
  put2(p + 11, hh);
  p[13] = ':';
  put2(p + 14, mm);
  p[16] = ':';
  put2(p + 17, ss);
  p[19] = '.';
  for (int i = 25; i >= 20; i--, us /= 10) p[i] = (char)('0' + us % 10);
  zl = strlen(zone);
  memcpy(p + 26, zone, zl + 1);
  return 26 + zl;
}

size_t time_iso(sb_time t, char *out) {
  return put_stamp(t, out, 'T', "Z");
}

size_t time_iso_offset(sb_time t, char *out) {
  return put_stamp(t, out, 'T', "+00:00");
}

size_t time_date(int64_t days, char *out) {
  int64_t y;
  unsigned m, d;
  time_civil_from_days(days, &y, &m, &d);
  if (y < 0 || y > 9999) y = y < 0 ? 0 : 9999;
  put2(out, (unsigned)y / 100);
  put2(out + 2, (unsigned)y % 100);
  out[4] = '-';
  put2(out + 5, m);
  out[7] = '-';
  put2(out + 8, d);
  out[10] = '\0';
  return 10;
}

static bool digits(const char *s, int n, unsigned *out) {
  unsigned v = 0;
  for (int i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9') return false;
    v = v * 10 + (unsigned)(s[i] - '0');
  }
  *out = v;
  return true;
}

static bool parse_date(const char *s, int64_t *days) {
  unsigned y, m, d;
  int64_t y2;
  unsigned m2, d2;
  if (!digits(s, 4, &y) || s[4] != '-' || !digits(s + 5, 2, &m) || s[7] != '-' ||
      !digits(s + 8, 2, &d))
    return false;
  if (m < 1 || m > 12 || d < 1 || d > 31) return false;
  *days = time_days_from_civil(y, m, d);
  time_civil_from_days(*days, &y2, &m2, &d2);
  return m2 == m && d2 == d; /* rejects 2023-02-30 */
}

static bool parse_zone(const char *s, int64_t *offset_s) {
  unsigned hh, mm;
  if (strcmp(s, "Z") == 0 || *s == '\0') {
    *offset_s = 0;
    return true;
  }
  if ((s[0] != '+' && s[0] != '-') || !digits(s + 1, 2, &hh) || s[3] != ':' ||
      !digits(s + 4, 2, &mm) || s[6] != '\0' || hh > 23 || mm > 59)
    return false;
  *offset_s = (int64_t)(hh * 3600 + mm * 60) * (s[0] == '-' ? -1 : 1);
  return true;
}

static bool parse_clock(const char *s, int64_t *us_of_day, const char **rest) {
  unsigned hh, mm, ss = 0, frac = 0;
  if (!digits(s, 2, &hh) || s[2] != ':' || !digits(s + 3, 2, &mm) || hh > 23 || mm > 59)
    return false;
  s += 5;
  if (*s == ':') {
    if (!digits(s + 1, 2, &ss) || ss > 59) return false;
    s += 3;
    if (*s == '.') {
      int n = 0;
      for (s++; *s >= '0' && *s <= '9'; s++, n++)
        if (n < 6) frac = frac * 10 + (unsigned)(*s - '0');
      if (n == 0) return false;
      for (; n < 6; n++) frac *= 10;
    }
  }
  *us_of_day = ((int64_t)hh * 3600 + mm * 60 + ss) * SB_USEC + frac;
  *rest = s;
  return true;
}

bool time_parse_iso(const char *s, sb_time *out) {
  int64_t days, us = 0, offset = 0;
  const char *rest = "";
  if (strlen(s) < 10 || !parse_date(s, &days)) return false;
  if (s[10] != '\0') {
    if ((s[10] != 'T' && s[10] != ' ') || !parse_clock(s + 11, &us, &rest) ||
        !parse_zone(rest, &offset))
      return false;
  }
  *out = days * SB_DAY + us - offset * SB_USEC;
  return true;
}

sb_time time_wall_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (sb_time)ts.tv_sec * SB_USEC + ts.tv_nsec / 1000;
}

int64_t time_mono_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * SB_USEC + ts.tv_nsec / 1000;
}
