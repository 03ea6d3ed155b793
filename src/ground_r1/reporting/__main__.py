"""python -m ground_r1.reporting OUTPUT_DIR [--image_root DIR]: rebuild curves.png and trajectories.html."""

import argparse
import sys

from ground_r1.reporting import write_report


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, allow_abbrev=False)
    parser.add_argument("output_dir")
    parser.add_argument("--image_root", default=None, help="folder relative image paths resolve against")
    args = parser.parse_args(argv)
    written = write_report(args.output_dir, image_root=args.image_root)
    for name, path in written.items():
        print(f"{name}: {path}")
    return 0 if written else 1


if __name__ == "__main__":
    sys.exit(main())
