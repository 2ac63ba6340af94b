/*
 * Driver for the Lua 5.4 corpus program (lua-src ships no lua.c).
 *
 * Usage: lua_driver SCRIPT [ARGS...]
 *
 * Like the standalone `lua SCRIPT ARGS...`: opens the standard libraries,
 * sets the global `arg` table (arg[0] = SCRIPT, arg[1..] = ARGS), runs the
 * script with ARGS as its varargs and reports any error with a traceback
 * on stderr. Returns 0 on success, 1 on error.
 *
 * The libjitrt tests call main() inside the test process, so this file
 * never calls exit() and keeps no state between calls.
 */
#include <stdio.h>

#include "lauxlib.h"
#include "lua.h"
#include "lualib.h"

static int msghandler(lua_State *L) {
    const char *msg = lua_tostring(L, 1);
    if (msg == NULL) {
        if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING)
            return 1;
        msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    }
    luaL_traceback(L, L, msg, 1);
    return 1;
}

struct run_args {
    int argc;
    char **argv;
};

static int pmain(lua_State *L) {
    struct run_args *ra = (struct run_args *)lua_touserdata(L, 1);
    int i, status, handler;

    luaL_checkversion(L);
    luaL_openlibs(L);

    lua_createtable(L, ra->argc, 1);
    for (i = 1; i < ra->argc; i++) {
        lua_pushstring(L, ra->argv[i]);
        lua_rawseti(L, -2, i - 1);
    }
    lua_setglobal(L, "arg");

    lua_pushcfunction(L, msghandler);
    handler = lua_gettop(L);
    status = luaL_loadfile(L, ra->argv[1]);
    if (status != LUA_OK)
        return lua_error(L);
    for (i = 2; i < ra->argc; i++)
        lua_pushstring(L, ra->argv[i]);
    status = lua_pcall(L, ra->argc - 2, 0, handler);
    if (status != LUA_OK)
        return lua_error(L);
    lua_pushboolean(L, 1);
    return 1;
}

int main(int argc, char **argv) {
    struct run_args ra;
    lua_State *L;
    int status, ok;

    if (argc < 2) {
        fprintf(stderr, "usage: %s SCRIPT [ARGS...]\n", argc > 0 ? argv[0] : "lua_driver");
        return 2;
    }
    L = luaL_newstate();
    if (L == NULL) {
        fprintf(stderr, "lua_driver: cannot create state: not enough memory\n");
        return 1;
    }
    ra.argc = argc;
    ra.argv = argv;
    lua_pushcfunction(L, pmain);
    lua_pushlightuserdata(L, &ra);
    status = lua_pcall(L, 1, 1, 0);
    ok = status == LUA_OK && lua_toboolean(L, -1);
    if (!ok) {
        const char *msg = lua_tostring(L, -1);
        fprintf(stderr, "lua_driver: %s\n", msg ? msg : "(error object is not a string)");
        fflush(stderr);
    }
    lua_close(L);
    return ok ? 0 : 1;
}
