#!/bin/sh
# Runs truv-sandbox ($TRUV_SANDBOX_REAL_BIN) under valgrind's memory checker
# for the "valgrind" ctest label: any error or leak is reported on stderr and
# turns the exit status into 99, which the specs' sb:shutdown() rejects.
exec valgrind --quiet --leak-check=full --show-leak-kinds=definite,indirect,possible \
  --errors-for-leak-kinds=definite,indirect,possible --error-exitcode=99 --log-fd=2 \
  "${TRUV_SANDBOX_REAL_BIN:?set TRUV_SANDBOX_REAL_BIN to the truv-sandbox binary}" "$@"
