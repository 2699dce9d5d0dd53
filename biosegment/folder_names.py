"""The names of the files and folders of a data folder, spelled once for every module.

A data folder keeps the layout of the stack it replaces (``EM/``, ``models/``,
``segmentations/``, ``annotations/`` and ``setup.json``) plus BioSegment's own state in
``.biosegment/`` and its accounts in ``.biosegment-accounts/``. Every module that builds or recognises one of these paths takes the name from
here, so a name can be read, searched for and changed in one place. This module imports nothing:
any layer may use it.
"""

from __future__ import annotations

__all__ = [
    "EM_DIR",
    "MODELS_DIR",
    "SEGMENTATIONS_DIR",
    "ANNOTATIONS_DIR",
    "STATE_DIR",
    "SETUP_FILE",
    "LAYOUT",
    "RAW_DIR",
    "LABELS_DIR",
    "MODEL_WEIGHTS",
    "MODEL_SUFFIX",
    "MODEL_CARD",
    "SEGMENTATION_LABELS",
    "SEGMENTATION_LABELS_ZARR",
    "SEGMENTATION_PROBABILITIES",
    "SEGMENTATION_CARD",
    "TRAINING_STATE",
    "LAST_EPOCH_DIR",
    "TRAINING_LOGS_DIR",
    "CATALOG_FILE",
    "SETUP_LAST_GOOD_FILE",
    "QUEUE_FILE",
    "ACCOUNTS_FILE",
    "ACCOUNTS_DIR",
    "TRASH_DIR",
    "JOBS_DIR",
    "WORKERS_DIR",
    "DAEMON_LOCK",
    "CACHE_DIR",
    "LOG_FILE",
    "JOB_LOG",
    "JOB_PARTS_DIR",
    "JOB_ASSEMBLY_CLAIM",
    "JOB_TRAINING_DIR",
    "JOB_LIVE_DIR",
    "JOB_CONTROL",
    "JOB_STEPS",
    "LIVE_STATUS",
]

# -- the top level ---------------------------------------------------------------------------

#: Image volumes, one folder per dataset (the default of setup.json's ``EM_location``).
EM_DIR = "EM"
MODELS_DIR = "models"
SEGMENTATIONS_DIR = "segmentations"
ANNOTATIONS_DIR = "annotations"
#: BioSegment's own state: catalog, queue, locks, job folders, caches (all rebuildable).
STATE_DIR = ".biosegment"
#: Accounts, API tokens and the audit log: beside the state folder, out of reach of a reset.
ACCOUNTS_DIR = ".biosegment-accounts"
#: What BioSegment moved aside instead of deleting (a replaced model, say), one folder per
#: move: beside the state folder, so resetting the state never empties it.
TRASH_DIR = ".biosegment-trash"
#: The lab's declarations: projects, datasets, models (the old stack's file).
SETUP_FILE = "setup.json"
#: The folders ``biosegment init`` creates.
LAYOUT = (EM_DIR, MODELS_DIR, SEGMENTATIONS_DIR, ANNOTATIONS_DIR, STATE_DIR)

# -- inside a dataset, a model and a segmentation ----------------------------------------------

#: ``EM/<dataset>/raw/``: the image volume; ``EM/<dataset>/labels/``: its ground truth.
RAW_DIR = "raw"
LABELS_DIR = "labels"
#: ``models/<name>/model.pytorch`` (or the old ``models/<name>.pytorch``) and its card.
MODEL_WEIGHTS = "model.pytorch"
MODEL_SUFFIX = ".pytorch"
MODEL_CARD = "model.json"
#: ``segmentations/<dataset>/<name>/``: the label volume (TIFF or OME-Zarr) and its card.
SEGMENTATION_LABELS = "labels.tif"
SEGMENTATION_LABELS_ZARR = "labels.ome.zarr"
#: Per-class probabilities of a segmentation, when asked for: a (c, z, y, x) OME-Zarr image.
SEGMENTATION_PROBABILITIES = "probabilities.ome.zarr"
SEGMENTATION_CARD = "segmentation.json"
#: A training folder's resumable state, the last epoch's model, and TensorBoard logs.
TRAINING_STATE = "training_state.pt"
LAST_EPOCH_DIR = "last"
TRAINING_LOGS_DIR = "logs"

# -- inside .biosegment/ ---------------------------------------------------------------------

CATALOG_FILE = "catalog.db"
#: The last setup.json that read without errors, kept to fall back on.
SETUP_LAST_GOOD_FILE = "setup.last-good.json"
QUEUE_FILE = "queue.db"
ACCOUNTS_FILE = "accounts.db"
#: One working folder per job.
JOBS_DIR = "jobs"
#: Presence locks of the processes that run jobs.
WORKERS_DIR = "workers"
DAEMON_LOCK = "daemon.lock"
#: Derived data that may be deleted at any time (image pyramids).
CACHE_DIR = "cache"
LOG_FILE = "biosegment.log"

# -- inside a job's folder (.biosegment/jobs/<id>/) --------------------------------------------

JOB_LOG = "job.log"
#: A split segmentation's finished z-blocks, and the claim of the one runner that assembles them.
JOB_PARTS_DIR = "parts"
JOB_ASSEMBLY_CLAIM = "assembling"
#: A train job's training folder: renamed into ``models/<name>/`` when the run ends.
JOB_TRAINING_DIR = "model"
#: A running train job's latest weights (``model.pytorch``, ``model.json``) and their
#: ``live.json`` status, for the live preview.
JOB_LIVE_DIR = "live"
LIVE_STATUS = "live.json"
#: A person's request of a running train job (accept or discard).
JOB_CONTROL = "control.json"
#: A train job's loss per optimizer step, one JSON line each.
JOB_STEPS = "steps.jsonl"
