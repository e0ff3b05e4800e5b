/* cli: truv-sandbox's command line.
 *
 * cli_parse() fills sb_options with defaults and then the flags given,
 * validating every value (ranges, formats, the secret's "sandbox-" prefix,
 * the mix). It prints --help / --version itself. Returns CLI_RUN to start
 * the server, CLI_EXIT_OK after --help/--version, or CLI_USAGE_ERROR (a
 * message was printed on stderr; exit status 2). */
#ifndef SANDBOX_CLI_H
#define SANDBOX_CLI_H

#include "sandbox.h"

enum cli_result { CLI_RUN, CLI_EXIT_OK, CLI_USAGE_ERROR };

enum cli_result cli_parse(int argc, char **argv, struct sb_options *opt);

#endif
