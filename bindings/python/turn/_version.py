"""The package's version: 2.MINOR.PATCH for the crate's 0.MINOR.PATCH.

The package index's name `turn` had turn 1.0 (the original, pure Python
package); a major of 2 keeps ``pip install -U turn`` from going back to it."""

__version__ = "2.1.0"
