#!/usr/bin/python3
"""Splits truv-renew's CPU per case by component (bench/profile.sh).

  profile_split.py DIR MODE CASES [PERF_CASES PERF_HZ]

In each pair of runs the one-case run (truv-renew's start) is taken off the
longer one. Reads DIR/MODE.{one,all}.measured (CPU per case, PERF_CASES
cases), DIR/perf.MODE.{one,all}.{sym,dso}.txt (perf report: inclusive time
by symbol, self samples by library) and DIR/callgrind.MODE.{one,all}.out
(CASES cases). Prints two Markdown tables:

  * components: time inside the calls into JSON parsing, the order model,
    the quota store, the journal, libcurl (perf, kernel time under them
    included; the rows nest), beside the callgrind instructions of the
    same calls (entering the set of functions from outside it);
  * self time by library (adds up), beside callgrind's self instructions.

The us are each perf share times the measured CPU per case."""
import json
import re
import sys
from collections import defaultdict


def parse(path):
    """-> (total, self[(ob, fn)], calls[((ob, fn), (ob, fn))], files[(ob, fn)])"""
    names = {"ob": {}, "fl": {}, "fn": {}}
    kind_of = {"ob": "ob", "cob": "ob", "fl": "fl", "fi": "fl", "fe": "fl", "cfi": "fl",
               "cfl": "fl", "fn": "fn", "cfn": "fn"}
    self_cost = defaultdict(int)
    calls = defaultdict(int)
    files = {}
    total = 0
    ob = fl = fn = None
    cob = cfn = None
    in_call = False
    rx = re.compile(r"^\((\d+)\)(?: (.*))?$")
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if not line or line[0] == "#":
                continue
            c = line[0]
            if c.isdigit() or c in "+-*":
                parts = line.split()
                cost = int(parts[1]) if len(parts) > 1 else 0
                if in_call:
                    calls[((ob, fn), (cob if cob is not None else ob, cfn))] += cost
                    in_call = False
                    cob = cfn = None
                else:
                    self_cost[(ob, fn)] += cost
                continue
            key, _, value = line.partition("=")
            if key == "summary" or line.startswith("summary:"):
                total = int(line.split(":")[1])
                continue
            if key == "calls":
                in_call = True
                continue
            if key not in kind_of:
                continue
            m = rx.match(value)
            table = names[kind_of[key]]
            if m:
                ident = int(m.group(1))
                if m.group(2) is not None:
                    table[ident] = m.group(2)
                name = table[ident]
            else:
                name = value
            if key == "ob":
                ob = name
            elif key == "fl":
                fl = name
            elif key == "fn":
                fn = name
                files[(ob, fn)] = fl
            elif key == "cob":
                cob = name
            elif key == "cfn":
                cfn = name
    return total, self_cost, calls, files


def base(fn):
    return fn.split("'")[0] if fn else fn


class Profile:
    def __init__(self, path):
        self.total, self.self_cost, self.calls, self.files = parse(path)

    def entering(self, member, caller_ok=lambda caller: True):
        """Cost of the calls from outside the set into it."""
        return sum(cost for (caller, callee), cost in self.calls.items()
                   if member(callee, self.files.get(callee) or "") and
                   not member(caller, self.files.get(caller) or "") and caller_ok(caller))

    def self_where(self, member):
        return sum(cost for key, cost in self.self_cost.items()
                   if member(key, self.files.get(key) or ""))


def obj(*parts):
    return lambda key, fl: any(p in (key[0] or "") for p in parts)


def fns(*names):
    return lambda key, fl: base(key[1]) in names


def in_files(*suffixes, but=()):
    return lambda key, fl: fl.endswith(suffixes) and base(key[1]) not in but


def perf_read(out, mode, what):
    """-> (total samples, {symbol: inclusive samples}, {dso: self samples})"""
    dso = {}
    with open(f"{out}/perf.{mode}.{what}.dso.txt") as f:
        for line in f:
            m = re.match(r"^\s+([0-9.]+)%\s+(\d+)\s+(\S+)", line)
            if m:
                dso[m.group(3)] = dso.get(m.group(3), 0) + int(m.group(2))
    total = sum(dso.values())
    sym = defaultdict(float)
    with open(f"{out}/perf.{mode}.{what}.sym.txt") as f:
        for line in f:
            m = re.match(r"^\s+([0-9.]+)%\s+([0-9.]+)%\s+\[.\]\s+(\S+)", line)
            if m:
                sym[m.group(3)] += float(m.group(1)) / 100 * total
    return total, sym, dso


QUOTA = ("truv_quota_usage", "truv_quota_reserve", "truv_quota_release", "truv_quota_note",
         "truv_quota_facts_read", "truv_quota_record_limit", "truv_quota_record_count")
JOURNAL = ("truv_journal_put", "truv_journal_get", "truv_journal_delete", "truv_journal_begin",
           "truv_journal_commit", "truv_journal_meta_get", "truv_journal_meta_set",
           "truv_jcursor_next", "truv_journal_counts")
CURL = ("curl_multi_socket_action", "curl_multi_perform", "curl_multi_add_handle",
        "curl_multi_remove_handle", "curl_easy_init", "curl_easy_cleanup", "curl_easy_reset",
        "curl_easy_duphandle", "curl_easy_setopt", "curl_easy_getinfo")


def main():
    out, mode, cases = sys.argv[1], sys.argv[2], int(sys.argv[3])
    pcases = int(sys.argv[4]) if len(sys.argv) > 4 else cases
    hz = float(sys.argv[5]) if len(sys.argv) > 5 and sys.argv[5] else 0
    one = Profile(f"{out}/callgrind.{mode}.one.out")
    all_ = Profile(f"{out}/callgrind.{mode}.all.out")
    m1 = json.load(open(f"{out}/{mode}.one.measured"))
    mn = json.load(open(f"{out}/{mode}.all.measured"))
    pper = pcases - 1
    per = cases - 1
    cpu_us = (mn["user_s"] + mn["sys_s"] - m1["user_s"] - m1["sys_s"]) / pper * 1e6
    total = (all_.total - one.total) / per
    reqs = (mn["requests"] - m1["requests"]) / pper
    cg_reqs = [int(open(f"{out}/{mode}.{w}.cg-requests").read()) for w in ("one", "all")]
    cg_reqs = (cg_reqs[1] - cg_reqs[0]) / per

    perf = None
    if hz:
        p1, pn = perf_read(out, mode, "one"), perf_read(out, mode, "all")
        ptotal = (pn[0] - p1[0]) / pper
        perf = (p1, pn, ptotal)

    def perf_syms(names):
        if not perf:
            return None
        p1, pn, ptotal = perf
        v = sum(pn[1].get(n, 0) for n in names) - sum(p1[1].get(n, 0) for n in names)
        return v / pper / ptotal

    def perf_dsos(parts):
        if not perf:
            return None
        p1, pn, ptotal = perf
        v = sum(c for d, c in pn[2].items() if any(x in d for x in parts)) - \
            sum(c for d, c in p1[2].items() if any(x in d for x in parts))
        return v / pper / ptotal

    lua = obj("/lua5.4", "liblua5.4")
    quota_store = in_files("core/src/store/quota.c", "core/src/store/quota_sqlite.c",
                           but=("truv_quota_sqlite", "truv_quota_key_of", "truv_quota_key_of_len",
                                "truv_quota_key_hex"))
    # label, perf share (time, kernel included), callgrind instructions
    components = [
        ("JSON parse of whole answers (truv_json_parse: cJSON into an arena)",
         perf_syms(("truv_json_parse",)), lambda p: p.entering(fns("truv_json_parse"))),
        ("order model built from the tree (truv_push_order_model)",
         perf_syms(("truv_push_order_model",)),
         lambda p: p.entering(fns("truv_push_order_model"))),
        ("documents handed to Lua as views (doc.c truv_push_document)",
         perf_syms(("truv_push_document",)), lambda p: p.entering(fns("truv_push_document"))),
        ("request bodies encoded (doc.c l_encode)",
         perf_syms(("l_encode",)), lambda p: p.entering(fns("l_encode"))),
        ("quota store: usage, reserve, notes, facts (SQLite file)",
         perf_syms(QUOTA), lambda p: p.entering(quota_store)),
        ("  of which reserve (BEGIN IMMEDIATE ... COMMIT)",
         perf_syms(("truv_quota_reserve",)), lambda p: p.entering(fns("truv_quota_reserve"))),
        ("quota keys: SHA-256 of each access token (truv_quota_key_of)",
         perf_syms(("l_quota_key",)),  # the hash is inlined there
         lambda p: p.entering(fns("truv_quota_key_of_len"))),
        ("journal: get, put, begin/commit, cursor (SQLite file)",
         perf_syms(JOURNAL),
         lambda p: p.entering(in_files("core/src/store/journal.c",
                                       but=("truv_journal_open", "truv_journal_close")))),
        ("  of which the group commits (truv_journal_begin/commit)",
         perf_syms(("truv_journal_begin", "truv_journal_commit")),
         lambda p: p.entering(fns("truv_journal_commit", "truv_journal_begin"))),
        ("libcurl, inclusive (with its TLS and callbacks into core)",
         perf_syms(CURL), lambda p: p.entering(obj("libcurl"))),
        ("  of which a new SSL_CTX, per connection (SSL_CTX_new_ex)",
         perf_syms(("SSL_CTX_new_ex",)), lambda p: p.entering(fns("SSL_CTX_new_ex"))),
        ("  of which the CA file read (X509_STORE_load_file_ex; once per pool since "
         "the CA cache applies)",
         perf_syms(("X509_STORE_load_file_ex",)),
         lambda p: p.entering(fns("X509_STORE_load_file_ex"))),
    ]
    objects = [
        ("kernel (system calls: sockets, files; page faults)", ("[kernel",), None),
        ("Lua 5.4 interpreter (VM, GC, tables, strings)", ("lua5.4",), lua),
        ("libc (malloc, memcpy, ...: everyone's)", ("libc.so",), obj("libc.so")),
        ("libcjson", ("libcjson",), obj("libcjson")),
        ("libsqlite3", ("libsqlite3",), obj("libsqlite3")),
        ("libcurl", ("libcurl",), obj("libcurl")),
        ("libssl + libcrypto (TLS; and the quota keys' SHA-256)", ("libssl", "libcrypto"),
         obj("libssl", "libcrypto")),
        ("truv core.so (C core and binding)", ("core.so",), obj("/truv/core.so")),
    ]
    pcpu = f"; perf: {perf[2] * 1e6 / hz:.0f} us a case in samples" if perf else ""
    print(f"\n### {mode}: CPU per case {cpu_us:.0f} us ({reqs:.2f} requests a case, start "
          f"taken off{pcpu}); {total / 1e3:.0f} k instructions a case under callgrind "
          f"({cg_reqs:.2f} requests a case)\n")
    print("| component (inclusive: these nest) | share of CPU (perf) | us/case | "
          "share of instructions (callgrind) |")
    print("|---|---:|---:|---:|")
    for label, share, f in components:
        v = (f(all_) - f(one)) / per / total
        ps = f"{share * 100:.1f} %" if share is not None else "-"
        us = f"{share * cpu_us:.0f}" if share is not None else "-"
        print(f"| {label} | {ps} | {us} | {v * 100:.1f} % |")
    print("\n| where the time goes (self; adds up) | share of CPU (perf) | us/case | "
          "share of instructions (callgrind) |")
    print("|---|---:|---:|---:|")
    seen_p = seen_c = 0
    for label, parts, member in objects:
        share = perf_dsos(parts)
        v = (all_.self_where(member) - one.self_where(member)) / per / total if member else None
        seen_p += share or 0
        seen_c += v or 0
        ps = f"{share * 100:.1f} %" if share is not None else "-"
        us = f"{share * cpu_us:.0f}" if share is not None else "-"
        cs = f"{v * 100:.1f} %" if v is not None else "(not seen)"
        print(f"| {label} | {ps} | {us} | {cs} |")
    if perf:
        print(f"| other | {(1 - seen_p) * 100:.1f} % | {(1 - seen_p) * cpu_us:.0f} | "
              f"{(1 - seen_c) * 100:.1f} % |")


if __name__ == "__main__":
    main()
