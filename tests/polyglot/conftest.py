# The polyglot suite reuses the Python suite's real-parts kit (tests/python/rediskit.py).
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "python"))
