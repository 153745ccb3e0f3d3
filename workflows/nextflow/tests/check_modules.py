#!/usr/bin/env python3
"""Static checks of the nf-core-style modules in modules/ssmgen/ (Nextflow itself cannot run
here). Our own encoding of the nf-core conventions, not nf-core's code:

* meta.yml against a JSON schema of the current nf-core meta.yml layout (channel-grouped
  `input`, `output` as a map of channels, `topics.versions`, element types including `eval`);
* meta.yml against main.nf: the same output channels (`emit:`), the same number of input
  channels, the same version command in the `eval(...)` output, the name;
* main.nf: `tag`, labels (a `process_*` size label, `process_gpu` for model-running modules),
  `ext.args`, `ext.prefix`, a `when:` block using `task.ext.when`, a `stub:` block, versions
  through `topic: versions`;
* environment.yml: channels and dependencies; tests/main.nf.test: runs ../main.nf and the
  process, and has a `-stub` test.

  check_modules.py [MODULES_DIR]        exit status 1 and one line per problem on failure
"""

import os
import re
import sys

import jsonschema
import yaml

ELEMENT = {
    "type": "object",
    "minProperties": 1,
    "maxProperties": 1,
    "additionalProperties": {
        "type": "object",
        "properties": {
            "type": {
                "enum": ["map", "file", "directory", "string", "integer", "float",
                         "boolean", "list", "eval"],
            },
            "description": {"type": "string", "minLength": 1},
            "pattern": {"type": "string"},
            "ontologies": {
                "type": "array",
                "items": {
                    "type": "object",
                    "additionalProperties": {"type": "string", "pattern": "^https?://"},
                },
            },
        },
        "required": ["type", "description"],
        "additionalProperties": False,
    },
}
CHANNEL = {"anyOf": [ELEMENT, {"type": "array", "minItems": 1, "items": ELEMENT}]}
TOOL = {
    "type": "object",
    "minProperties": 1,
    "maxProperties": 1,
    "additionalProperties": {
        "type": "object",
        "properties": {
            "description": {"type": "string"},
            "homepage": {"type": "string", "pattern": "^https?://"},
            "documentation": {"type": "string", "pattern": "^(https?|ftp)://"},
            "tool_dev_url": {"type": "string", "pattern": "^https?://"},
            "doi": {"anyOf": [{"type": "string", "pattern": "^10\\.\\d{4,9}/[^,]+$"},
                              {"const": "no DOI available"}]},
            "licence": {"type": "array", "items": {"type": "string"}, "minItems": 1,
                        "uniqueItems": True},
            "identifier": {"anyOf": [{"type": "string", "pattern": "^biotools:"},
                                     {"type": "string", "maxLength": 0}]},
            "args_id": {"type": "string"},
        },
        "required": ["description"],
        "anyOf": [{"required": [k]} for k in ("homepage", "documentation", "tool_dev_url", "doi")],
        "additionalProperties": False,
    },
}
META_SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "pattern": "^[a-z0-9_]+$"},
        "description": {"type": "string", "minLength": 1},
        "keywords": {"type": "array", "items": {"type": "string", "not": {"const": "example"}},
                     "uniqueItems": True, "minItems": 3},
        "tools": {"type": "array", "minItems": 1, "items": TOOL},
        "input": {"type": "array", "items": CHANNEL},
        "output": {"type": "object", "minProperties": 1,
                   "additionalProperties": {"type": "array", "minItems": 1, "items": CHANNEL}},
        "topics": {
            "type": "object",
            "properties": {"versions": {"type": "array", "minItems": 1, "items": CHANNEL}},
            "required": ["versions"],
        },
        "authors": {"type": "array", "minItems": 1, "items": {"type": "string"}},
        "maintainers": {"type": "array", "minItems": 1, "items": {"type": "string"}},
    },
    "required": ["name", "description", "keywords", "authors", "maintainers", "output",
                 "tools", "topics"],
    "additionalProperties": False,
}
ENV_SCHEMA = {
    "type": "object",
    "properties": {
        "channels": {"type": "array", "minItems": 1, "items": {"type": "string"}},
        "dependencies": {"type": "array", "minItems": 1},
    },
    "required": ["channels", "dependencies"],
}
MODEL_RUNNING = {"likelihood", "embed", "scorevariants"}


def block(text, name, following):
    """The text of `name:` up to the next of `following` labels in a process body."""
    m = re.search(rf"^\s*{name}:\s*$(.*?)^\s*(?:{'|'.join(following)}):\s*$", text, re.M | re.S)
    return m.group(1) if m else None


def check_module(folder, problems):
    short = os.path.basename(folder.rstrip("/"))
    say = lambda m: problems.append(f"{folder}: {m}")
    files = {f: os.path.join(folder, f) for f in
             ("main.nf", "meta.yml", "environment.yml", "tests/main.nf.test")}
    for f, p in files.items():
        if not os.path.isfile(p):
            say(f"{f} is missing")
    if problems and any(p.startswith(folder) for p in problems):
        return
    main = open(files["main.nf"]).read()
    meta = yaml.safe_load(open(files["meta.yml"]))
    env = yaml.safe_load(open(files["environment.yml"]))
    test = open(files["tests/main.nf.test"]).read()

    for err in jsonschema.Draft202012Validator(META_SCHEMA).iter_errors(meta):
        say(f"meta.yml: {'/'.join(map(str, err.absolute_path)) or '(top)'}: {err.message}")
    for err in jsonschema.Draft202012Validator(ENV_SCHEMA).iter_errors(env):
        say(f"environment.yml: {err.message}")

    process = f"SSMGEN_{short.upper()}"
    if not re.search(rf"^process {process} \{{", main, re.M):
        say(f"main.nf: no `process {process}`")
    if meta.get("name") != f"ssmgen_{short}":
        say(f"meta.yml: name {meta.get('name')!r}, expected 'ssmgen_{short}'")
    if not re.search(r'^\s*tag "\$meta\.id"', main, re.M):
        say('main.nf: no `tag "$meta.id"`')
    labels = re.findall(r"^\s*label '([^']+)'", main, re.M)
    if not any(re.fullmatch(r"process_(single|low|medium|high|long|high_memory)", l)
               for l in labels):
        say(f"main.nf: no process size label (has {labels})")
    if short in MODEL_RUNNING and "process_gpu" not in labels:
        say("main.nf: a model-running module needs label 'process_gpu'")
    for needle, what in [("task.ext.args", "ext.args"), ("task.ext.prefix", "ext.prefix"),
                         ("task.ext.when == null || task.ext.when", "the when: condition"),
                         ("topic: versions", "versions through `topic: versions`")]:
        if needle not in main:
            say(f"main.nf: does not use {what}")
    for label in ("input", "output", "when", "script", "stub"):
        if not re.search(rf"^\s*{label}:\s*$", main, re.M):
            say(f"main.nf: no `{label}:` block")

    # Channels: emit names and input count must match meta.yml.
    emits = re.findall(r"emit:\s*(\w+)", main)
    declared = list((meta.get("output") or {}).keys())
    if sorted(emits) != sorted(declared):
        say(f"meta.yml output channels {sorted(declared)} != main.nf emits {sorted(emits)}")
    inputs = block(main, "input", ["output"]) or ""
    n_in = len([l for l in inputs.splitlines() if l.strip()])
    if n_in != len(meta.get("input") or []):
        say(f"meta.yml lists {len(meta.get('input') or [])} input channels, main.nf has {n_in}")

    # The version command: eval(...) in main.nf equals the eval element of meta.yml.
    evals = re.findall(r'eval\("((?:[^"\\]|\\.)*)"\)', main)
    meta_evals = []
    for section in (meta.get("output", {}).get("versions_ssmgen", []),
                    meta.get("topics", {}).get("versions", [])):
        for channel in section:
            for element in channel if isinstance(channel, list) else [channel]:
                for key, val in element.items():
                    if isinstance(val, dict) and val.get("type") == "eval":
                        meta_evals.append(key)
    if not evals or any(e not in evals for e in meta_evals) or len(meta_evals) != 2:
        say(f"version command: main.nf {evals} vs meta.yml {meta_evals}")

    if 'script "../main.nf"' not in test or f'process "{process}"' not in test:
        say("tests/main.nf.test: does not run ../main.nf's process")
    if 'options "-stub"' not in test:
        say("tests/main.nf.test: no stub test")


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "modules", "ssmgen")
    modules = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))
    expected = {"likelihood", "embed", "scorevariants", "shards"}
    problems = []
    if not expected <= set(modules):
        problems.append(f"{root}: modules {sorted(expected - set(modules))} missing")
    for m in modules:
        check_module(os.path.join(root, m), problems)
    if problems:
        for p in problems:
            print(f"FAIL: {p}")
        sys.exit(1)
    print(f"ok: {len(modules)} modules ({', '.join(modules)}) pass the static checks")


if __name__ == "__main__":
    main()
