"""dnnjpeg: JPEG compression that serves neural networks: standard JPEG files, smaller for the model reading them.

Quick start::

    from PIL import Image
    import dnnjpeg

    choice = dnnjpeg.encode_for_model(img, "efficientnet_lite0", max_kl=0.05)   # the model in the loop
    img.save("x.jpg", qtables=dnnjpeg.load("resnet50"))   # plain Pillow, a tuned table
    dnnjpeg.register()
    img.save("x.jpg", "DNNJPEG", table="resnet50")        # registered format
    dnnjpeg.save(img, "y.jpg", options=dnnjpeg.EncodeOptions("efficientnet_lite0", 50, writer="trellis"))

Subpackages: ``ratecontrol`` (the model in the loop), ``batch`` (recompress a folder), ``transforms``
(torchvision), ``evaluation``, ``validation``, ``search`` (tune tables), ``cli``; docs/architecture.md.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("dnnjpeg")
except PackageNotFoundError:  # running from a source checkout without install
    __version__ = "0.0.0+unknown"

from . import _compat
from ._zigzag import ZIGZAG, from_zigzag, to_zigzag
from .errors import DnnjpegError
from .families import Family, load, load_family, register_family, resolve_table, tables
from .options import EncodeOptions
from .pillow_plugin import encode, register, save, to_jpeg_mode
from .qtable import SUBSAMPLINGS, QTable, QTableError, SixteenBitTableWarning

__all__ = [
    "SUBSAMPLINGS",
    "ZIGZAG",
    "DnnjpegError",
    "EncodeOptions",
    "Family",
    "QTable",
    "QTableError",
    "SixteenBitTableWarning",
    "__version__",
    "encode",
    "encode_for_model",
    "from_zigzag",
    "load",
    "load_family",
    "recompress",
    "register",
    "register_family",
    "resolve_table",
    "save",
    "tables",
    "to_jpeg_mode",
    "to_zigzag",
]

_compat.install()


def __getattr__(name: str):  # PEP 562: keep ``import dnnjpeg`` light
    if name == "recompress":
        from .batch import recompress

        return recompress
    if name == "encode_for_model":
        from .ratecontrol import encode_for_model

        return encode_for_model
    raise AttributeError(f"module 'dnnjpeg' has no attribute {name!r}")
