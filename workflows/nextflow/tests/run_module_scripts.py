#!/usr/bin/env python3
"""Runs the shell of each module's `script:` and `stub:` blocks without Nextflow: the Groovy
string is filled in the way Nextflow would fill it for one test task (values below), run with
bash in a folder holding the staged inputs, and every file the `output:` block declares must
then exist. This checks the commands and their options against the real ssmgen; it does not
check the Groovy around them (see README.md).

  run_module_scripts.py [--ssmgen PATH]      (from the repository root)
"""

import argparse
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
MODULES = os.path.join(ROOT, "workflows", "nextflow", "modules", "ssmgen")

# One test task per module: staged inputs and the values of the script's variables.
REF = {"fasta": "shards.fa", "fasta_index": "shards.fa.fai"}
TASKS = {
    "shards": {"meta.id": "genome", "fasta": "shards.fa", "fai": "shards.fa.fai",
               "args": "--size 700 --by chrom"},
    "likelihood": {"meta.id": "shard0002", "regions": "shard0002.bed", **REF,
                   "args": "--warmup 100k --strand both --device cpu"},
    "embed": {"meta.id": "shard0002", "regions": "shard0002.bed", **REF, "suffix": "npy",
              "args": "--warmup 100k --window 100 --stride 50 --device cpu"},
    "scorevariants": {"meta.id": "shard0002", "regions": "shard0002.bed", **REF,
                      "vcf": "shards.vcf", "args": "--warmup 100k --device cpu"},
}
STAGE = ["shards.fa", "shards.fa.fai", "shard0002.bed", "shards.vcf"]


def section(text, name, following):
    m = re.search(rf"^\s*{name}:\s*$(.*?)(?=^\s*(?:{'|'.join(following)}):\s*$|^\}}\s*$)",
                  text, re.M | re.S)
    if not m:
        sys.exit(f"no {name}: block")
    return m.group(1)


def fill(template, values):
    """A Groovy GString as Nextflow fills it: ${x}, $x, then \\$ and \\\\ unescaped."""
    out = re.sub(r"\$\{([\w.]+)\}|\$([A-Za-z_][\w.]*)",
                 lambda m: str(values[(m.group(1) or m.group(2))]), template)
    return out.replace("\\$", "$").replace("\\\\", "\\")


def shell_of(block, values):
    m = re.search(r'"""(.*?)"""', block, re.S)
    return fill(m.group(1).replace("\\$", "\x00"), values).replace("\x00", "$")


def declared_outputs(text, values):
    out = section(text, "output", ["when", "script"])
    return [fill(p, values) for p in re.findall(r'path\("([^"]+)"\)', out)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ssmgen", default=os.path.join(ROOT, "target", "release", "ssmgen"))
    a = ap.parse_args()
    bindir = tempfile.mkdtemp()
    os.symlink(os.path.abspath(a.ssmgen), os.path.join(bindir, "ssmgen"))
    env = dict(os.environ, PATH=bindir + os.pathsep + os.environ["PATH"])
    failures = 0
    for module, task in TASKS.items():
        text = open(os.path.join(MODULES, module, "main.nf")).read()
        values = {"task.cpus": 2, "prefix": task["meta.id"] if module != "shards"
                  else f"{task['meta.id']}.shards", "model_arg": "", "device": "", **task}
        for kind, block in (("script", section(text, "script", ["stub"])),
                            ("stub", section(text, "stub", []))):
            work = tempfile.mkdtemp()
            for f in STAGE:
                os.symlink(os.path.join(ROOT, "test-data", f), os.path.join(work, f))
            shell = shell_of(block, values)
            r = subprocess.run(["bash", "-euo", "pipefail", "-c", shell], cwd=work, env=env,
                               capture_output=True, text=True)
            missing = [p for p in declared_outputs(text, values)
                       if not glob.glob(os.path.join(work, p))]
            if r.returncode != 0 or missing:
                failures += 1
                print(f"FAIL: {module} {kind}: exit {r.returncode}, missing {missing}\n"
                      f"{shell}\n{r.stderr}")
            else:
                made = sorted(os.path.relpath(p, work) for p in glob.glob(f"{work}/**", recursive=True)
                              if os.path.isfile(p) and not os.path.islink(p))
                print(f"ran: {module} {kind}: {' '.join(made)}")
            shutil.rmtree(work)
    shutil.rmtree(bindir)
    if failures:
        sys.exit(1)


if __name__ == "__main__":
    main()
