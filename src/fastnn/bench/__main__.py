"""``python -m fastnn.bench --worker LIB ...`` (a benchmark worker), or
``python -m fastnn.bench ARGS`` (same as ``fastnn bench ARGS``)."""
import sys

from fastnn.bench.workers import main

if __name__ == "__main__":
    sys.exit(main())
