/* Timestamps, Retry-After and Truv's "available in N seconds". */
#include "check.h"
#include "truv/time.h"

static void iso_timestamps_parse_to_epoch_seconds(void) {
  CHECK_DBL(truv_parse_time("1970-01-01T00:00:00Z"), 0);
  CHECK_DBL(truv_parse_time("2021-04-21T21:45:14.418542Z"), 1619041514.418542);
  CHECK_DBL(truv_parse_time("2021-04-21T21:45:14Z"), 1619041514);
  CHECK_DBL(truv_parse_time("2021-04-21T23:45:14+02:00"), 1619041514);
  CHECK_DBL(truv_parse_time("2021-04-21T16:45:14-0500"), 1619041514);
  CHECK_DBL(truv_parse_time("2021-04-21 21:45:14"), 1619041514);
  CHECK_DBL(truv_parse_time("2019-08-24"), 1566604800);
  CHECK_DBL(truv_parse_time("2024-02-29T12:00:00Z"), 1709208000); /* leap day */
  CHECK_DBL(truv_parse_time("2021-04-21T21:45Z"), 1619041500);
}

static void malformed_timestamps_are_refused(void) {
  static const char *bad[] = {"",
                              "2021",
                              "2021-4-21",
                              "2021-04-21T",
                              "2021-13-01T00:00:00Z",
                              "2021-04-21T25:00:00Z",
                              "2021-04-21T21:45:14Zjunk",
                              "2021-04-21T21:45:14+0",
                              "yesterday",
                              NULL};
  const char **b;
  for (b = bad; *b; b++) {
    if (truv_parse_time(*b) >= 0) fprintf(stderr, "accepted: %s\n", *b);
    CHECK(truv_parse_time(*b) < 0);
  }
  CHECK(truv_parse_time(NULL) < 0);
}

static void retry_after_takes_seconds_or_any_http_date(void) {
  const double now = 1000;
  CHECK_DBL(truv_parse_retry_after("120", now), 1120);
  CHECK_DBL(truv_parse_retry_after(" 0 ", now), 1000);
  CHECK_DBL(truv_parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now), 784111777);
  CHECK_DBL(truv_parse_retry_after("Sunday, 06-Nov-94 08:49:37 GMT", now), 784111777);
  CHECK_DBL(truv_parse_retry_after("Sun Nov  6 08:49:37 1994", now), 784111777);
  CHECK_DBL(truv_parse_retry_after("soon", now), 0);
  CHECK_DBL(truv_parse_retry_after("12abc", now), 0);
  CHECK_DBL(truv_parse_retry_after("-5", now), 0);
  CHECK_DBL(truv_parse_retry_after(NULL, now), 0);
}

static void available_in_is_found_in_truvs_text(void) {
  CHECK_DBL(truv_parse_available_in("Request was throttled. Expected available in 42 seconds."),
            42);
  CHECK_DBL(truv_parse_available_in("Expected available in 1 second."), 1);
  CHECK_DBL(truv_parse_available_in("expected AVAILABLE IN 2.5 seconds"), 2.5);
  CHECK_DBL(truv_parse_available_in("available in the morning"), -1);
  CHECK_DBL(truv_parse_available_in("available in 5 minutes"), -1);
  CHECK_DBL(truv_parse_available_in(NULL), -1);
}

int main(void) {
  RUN(iso_timestamps_parse_to_epoch_seconds);
  RUN(malformed_timestamps_are_refused);
  RUN(retry_after_takes_seconds_or_any_http_date);
  RUN(available_in_is_found_in_truvs_text);
  return CHECK_DONE();
}
