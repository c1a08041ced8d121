#!/usr/bin/env python3
"""Compares three snapshots (directories written by regression-fidelity.sh's `snapshot`):
source, target (migrated) and baseline (pg_dump | psql).

Each snapshot becomes a map key -> text: one key per pg_dump entry of schema.sql (type, schema,
name; the text is the whole entry, header with owner included), one per statement of roles.sql
that names a fixture role (fid_…), one per line of items.txt (data hashes, sequences, large
objects, password verifier hashes, role settings, database properties).

An item of the target is fine when it equals the source's, or the baseline's: a difference that
pg_dump | psql itself makes is not the migrator's. Everything else is an extra difference,
printed with the object's key and a short diff; exit 1 when there is any.
"""
import difflib
import signal
import re
import sys

HEADER = re.compile(r"^-- (Data for )?Name: (.*); Type: (.*); Schema: (.*); Owner: (.*)$")
# Lines that differ between any two dumps by construction: random \restrict keys (pg_dump
# 17.6+/18), version banners.
# And the attribute option `pg_attver` that this Debian build of 15 adds to every column and no
# other server accepts (issue 11): no target can hold it, so it is no difference of anybody's.
NOISE = re.compile(r"^(\\(un)?restrict \S+|-- Dumped (from|by) .*"
                   r"|ALTER TABLE ONLY .+ ALTER COLUMN .+ SET \(pg_attver=\d+\);)$")


def schema_entries(path):
    entries, key, lines = {}, "PREAMBLE", []

    def flush():
        text = "\n".join(lines).strip("\n-")
        k, n = key, 2
        while k in entries:
            k = f"{key} #{n}"; n += 1
        entries[k] = text

    raw = open(path, encoding="utf-8", errors="replace").read().split("\n")
    for i, line in enumerate(raw):
        m = HEADER.match(line)
        # A header is framed by `--` lines; a literal holding a header-like line usually is not.
        if m and i > 0 and raw[i - 1] == "--" and i + 1 < len(raw) and raw[i + 1] == "--":
            if lines and lines[-1] == "--":
                lines.pop()
            flush()
            key, lines = f"SCHEMA {m.group(3)}: {m.group(4)}.{m.group(2)}", [line]
            continue
        if NOISE.match(line):
            continue
        lines.append(line)
    flush()
    return entries


def role_statements(path):
    """Statements of pg_dumpall --roles-only that name a fixture role (fid_…)."""
    out, stmt = {}, []
    for line in open(path, encoding="utf-8", errors="replace"):
        line = line.rstrip("\n")
        if not stmt and (line.startswith("--") or not line.strip() or NOISE.match(line)):
            continue
        stmt.append(line)
        if line.endswith(";"):
            text = "\n".join(stmt)
            stmt = []
            if re.search(r"\bfid_", text):
                out[f"ROLES: {role_key(text)}"] = text
    return out


# The key names what a statement is about, not how it is printed: pg_dumpall 18 prints a
# membership on a 15 server as `GRANT a TO b WITH ADMIN OPTION;` and on an 18 server as
# `… WITH ADMIN OPTION, INHERIT TRUE GRANTED BY postgres;`. Keyed by its text, a membership
# missing on the target would look like the source's (both lack the 18 form).
ROLE_KEYS = [
    r"GRANT \S+ TO [^\s;]+",
    r"ALTER ROLE \S+ IN DATABASE \S+ SET \S+",
    r"ALTER ROLE \S+ SET \S+",
    r"ALTER ROLE \S+ WITH",
    r"(CREATE|COMMENT ON) ROLE \S+?(?=[; ])",
]


def role_key(text):
    for k in ROLE_KEYS:
        m = re.match(k, text)
        if m:
            return m.group(0)
    return text.splitlines()[0][:120]


def items(path):
    out = {}
    for line in open(path, encoding="utf-8", errors="replace"):
        line = line.rstrip("\n")
        if "|" in line:
            k, v = line.split("|", 1)
            out[k] = v
    return out


def snapshot(d):
    s = {}
    for name, parse in (("schema.sql", schema_entries), ("roles.sql", role_statements), ("items.txt", items)):
        try:
            s.update(parse(f"{d}/{name}"))
        except FileNotFoundError:  # e.g. no database on a target whose migration failed early
            pass
    return s


def short_diff(a, b, limit=14):
    if a is None:
        return ["   (missing on the source)"]
    if b is None:
        return ["   (missing)"]
    d = [l for l in list(difflib.unified_diff(a.splitlines(), b.splitlines(), n=0, lineterm=""))[2:]
         if not l.startswith("@@")]
    more = len(d) - limit
    return ["   " + l[:200] for l in d[:limit]] + ([f"   … {more} more lines"] if more > 0 else [])


PER_KIND = 12  # items printed per kind; the full list goes to the optional fourth argument


def main(src_dir, tgt_dir, base_dir, full_path=None):
    src, tgt, base = snapshot(src_dir), snapshot(tgt_dir), snapshot(base_dir)
    keys = sorted(set(src) | set(tgt) | set(base))
    extra, common = [], 0
    for k in keys:
        s, t, b = src.get(k), tgt.get(k), base.get(k)
        if t == s:
            continue
        if t == b:
            common += 1
            continue
        extra.append((k, s, t, b))
    baseline_diffs = sum(1 for k in keys if base.get(k) != src.get(k))
    print(f"== items compared: {len(keys)}; pg_dump | psql (baseline) differs from the source in {baseline_diffs};"
          f" the migrated target in {common} of those ways, and in {len(extra)} more")
    if extra:
        full = open(full_path, "w") if full_path else None
        groups = {}
        for e in extra:
            groups.setdefault(e[0].split(": ", 1)[0], []).append(e)
        print("== differences of the migrated target that pg_dump | psql does not make, by kind:")
        print("   " + ", ".join(f"{g}: {len(v)}" for g, v in sorted(groups.items())))
        for g, group in sorted(groups.items()):
            for i, (k, s, t, b) in enumerate(group):
                state = "missing on the target" if t is None else ("extra on the target" if s is None else "differs")
                how = ("baseline same as source" if b == s else
                       "baseline lacks it too" if b is None else "baseline has it, in another form")
                lines = [f"-- {k}: {state} ({how})"] + (short_diff(s, t) if s is not None and t is not None else [])
                if i < PER_KIND:
                    print("\n".join(lines))
                elif i == PER_KIND:
                    print(f"-- … {len(group) - PER_KIND} more of {g}" + (f" (all in {full_path})" if full_path else ""))
                if full:
                    full.write("\n".join(lines) + "\n")
        print(f"FIDELITY: FAILED ({len(extra)} extra differences)")
        return 1
    print("FIDELITY: PASSED (the migrated target differs from the source only as pg_dump | psql does)")
    return 0


if __name__ == "__main__":
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # quiet under `| head`
    sys.exit(main(*sys.argv[1:5]))
