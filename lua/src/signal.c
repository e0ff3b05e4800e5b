/* Signals for a command-line program, such as truv-renew: a caught signal
 * only records itself, and the program looks at the record from its own
 * loop, where stopping is safe. Nothing but one store runs in the handler.
 *
 *   core.signals_catch{ "INT", "TERM", ... } -> true
 *       each named signal (INT, TERM, HUP, QUIT, USR1, USR2) is caught from
 *       now on, once: the handler is installed with SA_RESETHAND, so the
 *       same signal a second time has its default effect (Ctrl-C twice ends
 *       the program at once). A signal the process ignores (a background
 *       job's SIGINT, nohup's SIGHUP) stays ignored. Unknown names raise.
 *   core.signal_caught() -> "INT" | "TERM" | ... | nil
 *       the first signal caught since signals_catch, if any
 *   core.signals_release()
 *       the dispositions signals_catch found are put back
 *   core.signal_raise(name)
 *       the default disposition, then the signal itself: the process ends
 *       as killed by it, as a shell and a service manager expect after an
 *       interruption (the shell's status is 128 + the signal's number: 130
 *       for INT, 143 for TERM). Returns only if the signal is blocked.
 *
 * A signal's disposition belongs to the process, so this is the one place
 * of truv.core with state at file scope: the record (a sig_atomic_t) and
 * the dispositions to put back. Meant for a program's main thread; never
 * inside nginx, whose master process owns the signals. */
#include <signal.h>
#include <string.h>

#include "binding.h"

static const struct {
  const char *name;
  int sig;
} SIGNALS[] = {
  {"INT", SIGINT},   {"TERM", SIGTERM}, {"HUP", SIGHUP},
  {"QUIT", SIGQUIT}, {"USR1", SIGUSR1}, {"USR2", SIGUSR2},
};
#define NSIGNALS (sizeof SIGNALS / sizeof SIGNALS[0])

static volatile sig_atomic_t caught;     /* the first signal caught, 0: none */
static struct sigaction saved[NSIGNALS]; /* what signals_catch replaced */
static int installed[NSIGNALS];          /* whether saved[i] is to be put back */

static void on_signal(int sig) {
  if (!caught) caught = sig;
}

static size_t check_signal(lua_State *L, int idx) {
  const char *name = luaL_checkstring(L, idx);
  size_t i;
  if (strncmp(name, "SIG", 3) == 0) name += 3;
  for (i = 0; i < NSIGNALS; i++)
    if (strcmp(SIGNALS[i].name, name) == 0) return i;
  return (size_t)luaL_argerror(L, idx, lua_pushfstring(L, "unknown signal '%s'", name));
}

static int l_signals_catch(lua_State *L) {
  size_t n, k;
  luaL_checktype(L, 1, LUA_TTABLE);
  n = lua_rawlen(L, 1);
  for (k = 1; k <= n; k++) {
    struct sigaction sa, old;
    size_t i;
    lua_rawgeti(L, 1, (int)k);
    i = check_signal(L, -1);
    lua_pop(L, 1);
    if (sigaction(SIGNALS[i].sig, NULL, &old) == 0 && old.sa_handler == SIG_IGN) continue;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESETHAND; /* no SA_RESTART: a wait is cut short */
    if (sigaction(SIGNALS[i].sig, &sa, &old) != 0) continue;
    if (!installed[i]) saved[i] = old;
    installed[i] = 1;
  }
  caught = 0;
  lua_pushboolean(L, 1);
  return 1;
}

static int l_signal_caught(lua_State *L) {
  int sig = caught;
  size_t i;
  for (i = 0; sig && i < NSIGNALS; i++) {
    if (SIGNALS[i].sig == sig) {
      lua_pushstring(L, SIGNALS[i].name);
      return 1;
    }
  }
  lua_pushnil(L);
  return 1;
}

static int l_signals_release(lua_State *L) {
  size_t i;
  (void)L;
  for (i = 0; i < NSIGNALS; i++) {
    if (installed[i]) sigaction(SIGNALS[i].sig, &saved[i], NULL);
    installed[i] = 0;
  }
  return 0;
}

static int l_signal_raise(lua_State *L) {
  size_t i = check_signal(L, 1);
  struct sigaction sa;
  sigset_t set;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = SIG_DFL;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGNALS[i].sig, &sa, NULL);
  installed[i] = 0;
  sigemptyset(&set);
  sigaddset(&set, SIGNALS[i].sig);
  sigprocmask(SIG_UNBLOCK, &set, NULL);
  raise(SIGNALS[i].sig);
  return 0;
}

int truv_signal_caught(void) {
  return caught != 0;
}

void truv_open_signal(lua_State *L) {
  static const luaL_Reg funcs[] = {{"signals_catch", l_signals_catch},
                                   {"signal_caught", l_signal_caught},
                                   {"signals_release", l_signals_release},
                                   {"signal_raise", l_signal_raise},
                                   {NULL, NULL}};
  luaL_setfuncs(L, funcs, 0);
}
