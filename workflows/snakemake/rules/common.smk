# Configuration checks and helpers shared by the rules.

import os
import shlex

from snakemake.utils import validate


validate(config, "../schemas/config.schema.yaml")

OUT = config["outdir"].rstrip("/")
GENOME = config["genome"]
FAI = f"{GENOME}.fai"
VCF = config.get("vcf") or ""
SSMGEN = config["ssmgen"]
RES = config["resources"]
WARMUP = str(config["shards"]["warmup"])
GATHER = workflow.source_path("../scripts/gather.py")


def engine_options():
    """Options of every model-running ssmgen command: device, model, quiet."""
    opts = ["--device", config["device"], "-q"]
    if config.get("model"):
        opts += ["-m", config["model"]]
    return " ".join(shlex.quote(o) for o in opts)


ENGINE = engine_options()


def gpu_resources():
    """Scheduler resources of a model-running job: `gpu` (the Snakemake/SLURM-plugin
    standard resource) and memory and time; with gpus: 0 none is asked for."""
    res = {"mem_mb": RES["mem_mb"], "runtime": RES["runtime"]}
    if RES["gpus"] > 0:
        res["gpu"] = RES["gpus"]
    return res


def shard_names():
    """The shard names `ssmgen shards` wrote (known once the checkpoint has run)."""
    split = checkpoints.shards.get().output.split
    return sorted(glob_wildcards(os.path.join(split, "{shard}.bed")).shard)


def shard_parts(pattern):
    """An input function: `pattern` expanded over every shard, in genome order."""

    def parts(wildcards):
        return expand(pattern, shard=shard_names())

    return parts


def embed_ext():
    return {"npy": "npy", "safetensors": "safetensors", "csv": "csv"}[config["embed"]["format"]]


def final_outputs():
    out = []
    if config["likelihood"]["enabled"]:
        out += [f"{OUT}/likelihood.bedgraph.gz", f"{OUT}/likelihood.bw"]
    if config["embed"]["enabled"]:
        out.append(f"{OUT}/embed.{embed_ext()}")
        if embed_ext() != "csv":
            out.append(f"{OUT}/embed.{embed_ext()}.rows.bed")
    if VCF:
        out += [f"{OUT}/variants.vcf.gz", f"{OUT}/variants.vcf.gz.tbi", f"{OUT}/variants.tsv"]
    return out


def embed_window_options():
    """`--window` and `--stride` of the embed rule."""
    e = config["embed"]
    opts = f"--window {e['window']}"
    if e["stride"]:
        opts += f" --stride {e['stride']}"
    return opts
