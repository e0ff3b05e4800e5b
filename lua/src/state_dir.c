/* Where durable stores live by default: a private directory made on demand,
 * and whether the process runs as root (which picks /var/lib over the
 * user's state directory; see truv.quota.default_path).
 *
 *   core.private_dir(path) -> true | nil, err
 *     Makes every missing directory of `path` with mode 0700 (less the
 *     umask), leaving existing ones as they are; fails (kind "internal",
 *     code "state_dir") when one cannot be made or is not a directory.
 *   core.euid() -> the effective user id */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "binding.h"

static int dir_fail(lua_State *L, const char *path, int e) {
  truv_err err;
  truv_err_clear(&err);
  truv_err_set(&err, TRUV_EINTERNAL, "state_dir", "cannot make the directory %.200s: %s", path,
               strerror(e));
  return truv_fail(L, &err);
}

static int make_one(const char *path) {
  struct stat st;
  if (mkdir(path, 0700) == 0) return 0;
  if (errno != EEXIST) return errno;
  if (stat(path, &st) != 0) return errno;
  return S_ISDIR(st.st_mode) ? 0 : ENOTDIR;
}

static int l_private_dir(lua_State *L) {
  size_t len, i;
  const char *path = luaL_checklstring(L, 1, &len);
  char *p;
  int e;
  if (len == 0) return luaL_argerror(L, 1, "a directory path expected");
  p = lua_newuserdata(L, len + 1); /* scratch, collected */
  memcpy(p, path, len + 1);
  /* each parent in turn, then the directory itself */
  for (i = 1; i < len; i++) {
    if (p[i] != '/') continue;
    p[i] = '\0';
    e = make_one(p);
    p[i] = '/';
    if (e) return dir_fail(L, path, e);
  }
  if ((e = make_one(p))) return dir_fail(L, path, e);
  lua_pushboolean(L, 1);
  return 1;
}

static int l_euid(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)geteuid());
  return 1;
}

void truv_open_state_dir(lua_State *L) {
  static const luaL_Reg funcs[] = {{"private_dir", l_private_dir}, {"euid", l_euid}, {NULL, NULL}};
  luaL_setfuncs(L, funcs, 0);
}
