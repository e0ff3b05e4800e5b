/* libFuzzer target: the case-file reader, truv.cases, over any bytes.
 *
 * An embedded Lua 5.4 runs the repository's own lua/truv/cases.lua, with
 * truv.core compiled into this executable (lua/src and core/src) and
 * preloaded through its opener, so no installed copy is ever read. Each
 * input is read as CSV text, as JSON text and as a file whose name has no
 * extension (the reader then sniffs the format); fuzz_cases.lua beside this
 * file holds the checks. Any Lua error, the reader's or a broken check, is
 * printed and aborts: the reader's only answers are cases, problems and
 * refusals, never a raised error.
 *
 * Coverage: liblua is not instrumented, so libFuzzer would see only the C
 * parts (the JSON decoder). A line hook feeds the Lua code's line-to-line
 * transitions to libFuzzer as extra counters (the section libFuzzer reads
 * besides its own), so that a new path through the Lua reader counts as
 * new coverage.
 *
 * The file: one per process, in memory (memfd_create) and reached as
 * /proc/self/fd/N, so that nothing is left behind when a crash ends the
 * process, and no disk is written (a file on ext4 truncated and rewritten
 * is flushed on every close). TRUV_LUA_DIR overrides the lua/ directory the
 * build names. */
#define _GNU_SOURCE /* memfd_create */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int luaopen_truv_core(lua_State *L);

#define LINE_COUNTERS (1 << 16)

/* libFuzzer adds every counter of this section to its features after each
 * input (and clears them before the next). */
__attribute__((section("__libfuzzer_extra_counters"))) static uint8_t line_counters[LINE_COUNTERS];

static lua_State *L;
static int previous_line;
static int file_fd = -1;
static char file_path[64];

static void die(const char *what) {
  fprintf(stderr, "fuzz_cases: %s\n", what);
  abort();
}

/* Line events carry their line; asking for the chunk as well would cost a
 * call to lua_getinfo per line, so the lines of fuzz_cases.lua count too
 * (they repeat what the reader did: harmless). Not instrumented itself. */
__attribute__((no_sanitize("address", "undefined", "coverage"))) static void
on_line(lua_State *l, lua_Debug *ar) {
  unsigned idx = ((unsigned)previous_line * 7919u + (unsigned)ar->currentline) % LINE_COUNTERS;
  (void)l;
  if (line_counters[idx] != 255) line_counters[idx]++;
  previous_line = ar->currentline;
}

static void open_file(void) {
  if ((file_fd = memfd_create("truv-fuzz-cases", MFD_CLOEXEC)) < 0) die(strerror(errno));
  snprintf(file_path, sizeof file_path, "/proc/self/fd/%d", file_fd);
}

/* Loads fuzz_cases.lua, whose chunk returns check(text, path), and keeps
 * check in the registry. */
static void start(void) {
  const char *lua_dir = getenv("TRUV_LUA_DIR");
  char path[4096];
  if (!lua_dir || !*lua_dir) lua_dir = TRUV_LUA_DIR;
  if (!(L = luaL_newstate())) die("no Lua state");
  luaL_openlibs(L);
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  lua_pushcfunction(L, luaopen_truv_core);
  lua_setfield(L, -2, "truv.core");
  lua_pop(L, 1);
  lua_getglobal(L, "package");
  lua_pushfstring(L, "%s/?.lua;%s/?/init.lua", lua_dir, lua_dir);
  lua_setfield(L, -2, "path");
  lua_pushliteral(L, "");
  lua_setfield(L, -2, "cpath");
  lua_pop(L, 1);
  snprintf(path, sizeof path, "%s/fuzz/fuzz_cases.lua", lua_dir);
  if (luaL_loadfile(L, path) != LUA_OK || lua_pcall(L, 0, 1, 0) != LUA_OK) die(lua_tostring(L, -1));
  if (!lua_isfunction(L, -1)) die("fuzz_cases.lua returns no check function");
  lua_setfield(L, LUA_REGISTRYINDEX, "truv.fuzz.check");
  lua_sethook(L, on_line, LUA_MASKLINE, 0);
  open_file();
}

static void write_file(const uint8_t *data, size_t size) {
  size_t off = 0;
  if (ftruncate(file_fd, 0) != 0) die(strerror(errno));
  while (off < size) {
    ssize_t n = pwrite(file_fd, data + off, size - off, (off_t)off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) die(strerror(errno));
    off += (size_t)n;
  }
}

/* The message handler of each check: the error with the Lua traceback. */
static int traceback(lua_State *l) {
  luaL_traceback(l, l, luaL_tolstring(l, 1, NULL), 1);
  return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!L) start();
  write_file(data, size);
  previous_line = 0;
  lua_pushcfunction(L, traceback);
  lua_getfield(L, LUA_REGISTRYINDEX, "truv.fuzz.check");
  lua_pushlstring(L, (const char *)data, size);
  lua_pushstring(L, file_path);
  if (lua_pcall(L, 2, 0, -4) != LUA_OK) die(lua_tostring(L, -1));
  lua_pop(L, 1);
  /* Frees this input's garbage now: libFuzzer checks for leaks after an
   * input that allocated more than it freed, a full scan of the heap each
   * time, which Lua's deferred collection would otherwise cause always. */
  lua_gc(L, LUA_GCCOLLECT, 0);
  return 0;
}
