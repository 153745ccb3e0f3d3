"""The training and held-out genomes (see ../shared/data/README.md) and a FASTA reader."""
import gzip

TRAIN = [
    "klebsiella_Klebs_HS11286.fna.gz",
    "klebsiella_Klebs_Kp1084.fna.gz",
    "klebsiella_MGH78578.fna.gz",
    "klebsiella_NTUH-K2044.fna.gz",
    "lambda_NC_001416.fa.gz",
]
HELD_OUT = "ecoli_536_NC_008253.fna.gz"


def read_fasta(path):
    """The records of a (gzipped) FASTA file as bytes, one per record."""
    opener = gzip.open if path.endswith(".gz") else open
    records, cur = [], []
    with opener(path, "rb") as f:
        for line in f:
            if line.startswith(b">"):
                if cur:
                    records.append(b"".join(cur))
                cur = []
            else:
                cur.append(line.strip())
    if cur:
        records.append(b"".join(cur))
    return records
