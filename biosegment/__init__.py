"""BioSegment: deep-learning segmentation of electron-microscopy volumes.

The package is organised by the path data takes through the product: files land in the data
folder, the ``daemon`` notices them and records them in the ``catalog``, ``tasks`` queue work,
the ``engine`` segments and trains, ``volumes`` read and write image stacks, and ``webui``
shows it all.
"""

__version__ = "0.1.0"
