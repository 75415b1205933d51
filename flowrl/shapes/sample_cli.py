"""The shipped ShapeWorld model's folder, and ``python -m flowrl.shapes.sample_cli``, which is `flowrl sample`
(`flowrl.sample_cli`: any model `flowrl train` accepts; the shipped ShapeWorld model by default)."""

from pathlib import Path


def default_model_folder() -> Path:
    """The shipped model: `assets/shapeworld` at the repository root (two levels above this package)."""
    return Path(__file__).resolve().parents[2] / "assets" / "shapeworld"


def main(argv: list[str] | None = None) -> int:
    """`flowrl sample` (`flowrl.sample_cli.main`)."""
    from flowrl.sample_cli import main as sample_main

    return sample_main(argv)


if __name__ == "__main__":
    raise SystemExit(main())
