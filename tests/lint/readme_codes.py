#!/usr/bin/python3
"""Documentation lint (ctest lint.readme_codes): the README's error table has one row
`| <http status> | `<code>` | ... |` for every row of camd's status table (the X-macro
CAMD_STATUS_MAP in include/camd/status.h), and no code the table does not have.
Usage: readme_codes.py ROOT"""
import re
import sys

root = sys.argv[1]
status_h = open(f"{root}/include/camd/status.h").read()
rows = re.findall(r'X\(\s*(\w+)\s*,\s*(-?\d+)\s*,\s*(\d+)\s*,\s*"(\w+)"', status_h)
table = {code: int(http) for name, value, http, code in rows if name != "OK"}
readme = open(f"{root}/README.md").read()
section = readme[readme.index("### Errors"):readme.index("## Configuration")]
listed = {code: int(http) for http, code in re.findall(r"^\| (\d{3}) \| `(\w+)` \|", section, re.M)}
problems = []
for code, http in sorted(table.items()):
    if code not in listed:
        problems.append(f"README lacks the row | {http} | `{code}` |")
    elif listed[code] != http:
        problems.append(f"README gives `{code}` status {listed[code]}, the table {http}")
for code in sorted(set(listed) - set(table)):
    problems.append(f"README lists `{code}`, which is not in the status table")
for p in problems:
    print(p)
print(f"readme_codes: {len(table)} codes in the status table, {len(listed)} rows in the README, "
      f"{len(problems)} problems")
sys.exit(1 if problems or len(table) < 10 else 0)
