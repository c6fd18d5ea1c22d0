"""Write the fraud demo data (transactions, users, merchants) as parquet.

    .venv/bin/python examples/fraud/generate.py --rows 1000000 --out /tmp/fraud

The generator itself ships in `kosmos.features.demo` so that `make run` can
create the demo project without this folder; the same seed gives the same data.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from kosmos.features.demo import generate, write


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000, help="transactions (default 100k)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, default=Path("fraud-data"))
    args = parser.parse_args()
    data = generate(rows=args.rows, seed=args.seed)
    paths = write(data, args.out)
    tx = data.transactions
    print(
        f"{len(tx):,} transactions, fraud rate {tx['label'].mean():.2%}, "
        f"{len(data.users):,} users, {len(data.merchants):,} merchants"
    )
    for name, path in paths.items():
        print(f"  {name:<13} {path}")


if __name__ == "__main__":
    main()
