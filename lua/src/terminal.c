/* The terminal a program writes to, asked of the kernel (Lua's io library
 * cannot): whether a descriptor is one, and its size now.
 *
 *   core.isatty(fd) -> boolean                    (fd: 0, 1, 2, ...)
 *   core.terminal_size(fd) -> columns, rows | nil (TIOCGWINSZ; nil when fd is
 *                                                  not a terminal or reports 0)
 *
 * The size is asked each time: a window resized while a program runs is
 * seen at its next call, with no SIGWINCH handler. */
#include <sys/ioctl.h>
#include <unistd.h>

#include "binding.h"

static int check_fd(lua_State *L) {
  lua_Integer fd = luaL_checkinteger(L, 1);
  luaL_argcheck(L, fd >= 0 && fd <= 1 << 20, 1, "a file descriptor expected");
  return (int)fd;
}

static int l_isatty(lua_State *L) {
  lua_pushboolean(L, isatty(check_fd(L)) == 1);
  return 1;
}

static int l_terminal_size(lua_State *L) {
  struct winsize ws;
  int fd = check_fd(L);
  if (ioctl(fd, TIOCGWINSZ, &ws) != 0 || ws.ws_col == 0) {
    lua_pushnil(L);
    return 1;
  }
  lua_pushinteger(L, ws.ws_col);
  lua_pushinteger(L, ws.ws_row);
  return 2;
}

void truv_open_terminal(lua_State *L) {
  static const luaL_Reg funcs[] = {
    {"isatty", l_isatty}, {"terminal_size", l_terminal_size}, {NULL, NULL}};
  luaL_setfuncs(L, funcs, 0);
}
