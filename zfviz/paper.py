"""The paper's own numbers, in one place: Zeiler & Fergus (2014), arXiv:1311.2901 v3 (= ECCV where both read).

Explained in the chapter "Introduction" (which version the book cites) and used by every chapter that sets
a result of ours beside the paper's. Each constant is written as the paper prints it (percentages as
percent, e.g. ``38.4`` for 38.4 %), with the section, figure or table it comes from. Chapters glue or cite
these instead of typing them, and ``tests/test_prose_numbers.py`` accepts a number in the prose that equals
one of them.
"""
from __future__ import annotations

import numbers

VERSION = "arXiv:1311.2901v3"
YEAR = 2014

# --- §3 Training, Fig. 3 (the architecture) -------------------------------------------------------------
INPUT_SIZE = 224                 # Fig. 3: 224x224 crops of images resized to 256
INPUT_RANGE = (-128, 128)        # §3: "input images are roughly in the [-128,128] range" (pixels minus the mean)
RESIZE = 256                     # §3: short side to 256, centre 256x256 crop
CROPS = 10                       # §3: 10 sub-crops (corners + centre, with and without flip)
CONV_CHANNELS = (96, 256, 384, 384, 256)     # Fig. 3, layers 1-5
CONV_KERNELS = (7, 5, 3, 3, 3)               # Fig. 3
CONV_STRIDES = (2, 2, 1, 1, 1)               # Fig. 3
FC_UNITS = 4096                  # Fig. 3, layers 6 and 7
POOL = (3, 2)                    # Fig. 3: 3x3 max pooling, stride 2
FEATURE_SIZES = (110, 55, 26, 13, 13, 13, 6)  # Fig. 3: conv1, pool1, conv2, pool2/conv3-5, pool5
CLASSES = 1000                   # ImageNet 2012
PARAMETERS = 62_357_608          # Fig. 3's net with 1000 classes (counted from the architecture)
TRAIN_IMAGES = 1_300_000         # §3: 1.3 million
VAL_IMAGES = 50_000              # §3
TEST_IMAGES = 100_000            # §3
BATCH_SIZE = 128                 # §3
LEARNING_RATE = 1e-2             # §3
MOMENTUM = 0.9                   # §3
DROPOUT = 0.5                    # §3, layers 6 and 7
INIT_STD = 1e-2                  # §3: "weights initialised to 10^-2", biases 0
FILTER_RMS = 0.1                 # §3: filters whose RMS exceeds 0.1 are renormalised to it
EPOCHS = 70                      # §3
TRAINING_DAYS = 12               # §3, on one GTX580
RECEPTIVE_FIELDS = (7, 27, 75, 107, 139)     # layers 1-5, pixels (from Fig. 3's kernels and strides)
LAYER5_SIDE_SHARE = 139 / 224    # a layer-5 unit sees 62% of the image side

# --- §4 Visualisation -------------------------------------------------------------------------------------
TOP_K = 9                        # Fig. 2: the top 9 activations of each feature map
SNAPSHOT_EPOCHS = (1, 2, 5, 10, 20, 30, 40, 64)   # Fig. 4
INVARIANCE_IMAGES = 5            # Fig. 5: five images
TRANSLATION_PX = 60              # Fig. 5: vertical translation -60..60 px
SCALE_RANGE = (1.0, 1.8)         # Fig. 5
ROTATION_DEGREES = 350           # Fig. 5: 0..350 degrees
FIRST_LAYER_KERNEL_KRIZHEVSKY = 11    # §4.1: 11x11 filters, stride 4, reduced to 7x7, stride 2
FIRST_LAYER_STRIDE_KRIZHEVSKY = 4

# §4.3, Table 1 (arXiv v3): mean sign-change score over pairs of the 5 dog images
CORRESPONDENCE_IMAGES = 5
CORRESPONDENCE_LAYER5 = {"right eye": 0.067, "left eye": 0.069, "nose": 0.079, "random": 0.107}
CORRESPONDENCE_LAYER7 = 0.07     # "about 0.07" for the three parts and the random masks alike
# Table 1 in full, with the +- it prints (the spread over the image pairs): {part: ((layer 5 mean, +-),
# (layer 7 mean, +-))}. "right eye" / "left eye" as the paper names them; "random" the random-region control.
CORRESPONDENCE_TABLE1 = {
    "right eye": ((0.067, 0.007), (0.069, 0.015)),
    "left eye": ((0.069, 0.007), (0.068, 0.013)),
    "nose": ((0.079, 0.017), (0.069, 0.011)),
    "random": ((0.107, 0.017), (0.073, 0.014)),
}

# --- §5 Experiments ----------------------------------------------------------------------------------------
# Table 2, ImageNet 2012 error %: (val top-1, val top-5, test top-5); None = "-" in the paper. Every row of
# arXiv v3, in its order. "*": trained on both the ImageNet 2011 and 2012 training sets (the table's caption;
# Krizhevsky et al.'s own table says their starred nets also had an extra, sixth convolutional layer).
IMAGENET = {
    "Gunji et al. (best entry that was not a convnet)": (None, None, 26.2),
    "Krizhevsky et al., 1 convnet": (40.7, 18.2, None),
    "Krizhevsky et al., 5 convnets": (38.1, 16.4, 16.4),
    "Krizhevsky et al.*, 1 convnet": (39.0, 16.6, None),
    "Krizhevsky et al.*, 7 convnets": (36.7, 15.4, 15.3),
    "Krizhevsky et al. replicated, 1 convnet": (40.5, 18.1, None),
    "1 convnet (ours)": (38.4, 16.5, None),
    "5 convnets (ours) (a)": (36.7, 15.3, 15.3),
    "1 convnet (ours), layers 3-5 wider (b)": (37.5, 16.0, 16.1),
    "6 convnets": (36.0, 14.7, 14.8),
}
IMAGENET_STARRED = ("Krizhevsky et al.*, 1 convnet", "Krizhevsky et al.*, 7 convnets")   # trained on 2011 + 2012
# Table 3, size ablations, error %: (train top-1, val top-1, val top-5)
SIZE_ABLATIONS = {
    "Krizhevsky replication": (35.1, 40.5, 18.1),
    "removed layers 3,4": (41.8, 45.4, 22.1),
    "removed layer 7": (27.4, 40.0, 18.4),
    "removed layers 6,7": (27.4, 44.8, 22.4),
    "removed layers 3,4,6,7": (71.1, 71.3, 50.1),
    "Krizhevsky, layers 6,7 at 2048 units": (40.3, 41.7, 18.8),
    "Krizhevsky, layers 6,7 at 8192 units": (26.8, 40.0, 18.1),
    "ZF model": (33.1, 38.4, 16.5),
    "layers 6,7 at 2048 units": (38.2, 40.2, 17.6),
    "layers 6,7 at 8192 units": (22.0, 38.8, 17.0),
    "layers 3,4,5 at 512,1024,512": (18.8, 37.5, 16.0),
    "both enlarged": (10.0, 38.3, 16.9),
}
SIZE_ABLATION_FC_UNITS = (2048, 8192)        # Table 3: layers 6 and 7 narrower and wider than 4096
SIZE_ABLATION_CONV_CHANNELS = (512, 1024, 512)   # Table 3: layers 3, 4, 5 wider than 384, 384, 256
# Tables 4-5, feature generalisation, accuracy %: {training images per class: (pretrained, from scratch)}
CALTECH101 = {15: (83.8, 22.8), 30: (86.5, 46.5)}
CALTECH256 = {15: (65.7, 9.0), 30: (70.6, 22.5), 45: (72.7, 31.2), 60: (74.2, 38.8)}
CALTECH101_PREVIOUS_BEST = 84.3  # Table 4: the best earlier result at 30 per class (the "+2.2%" of §5.2)
CALTECH256_PREVIOUS_BEST = 55.2  # Table 5: the best earlier result at 60 per class (Bo et al.)
CALTECH256_BEATS_WITH = 6        # §5.2: 6 images per class beat the previous best, which used 60
PASCAL_MEAN = 79.0               # Table 6: mean AP (the best reported 82.2; wins 5 of 20 classes)
PASCAL_BEST_REPORTED = 82.2
PASCAL_WINS = (5, 20)
# Table 7, per-layer features, accuracy % (Caltech-101 at 30/class, Caltech-256 at 60/class)
PER_LAYER = {
    "SVM (1)": (44.8, 24.6), "SVM (2)": (66.2, 39.6), "SVM (3)": (72.3, 46.0), "SVM (4)": (76.6, 51.3),
    "SVM (5)": (86.2, 65.6), "SVM (7)": (85.5, 71.7), "Softmax (5)": (82.9, 65.7), "Softmax (7)": (85.4, 72.6),
}
ILSVRC2012_SECOND = 26.2        # §5.1 and Table 2 (Gunji et al.): the best entry that was not a convnet (v1 printed 26.1)


def values() -> list[float]:
    """Every number above, flattened (tuples and dict values unpacked, None skipped); percentages as printed
    (a share below 1 also as per cent, except in the tables of scores listed in ``_NEVER_PERCENT``).

    ``tests/test_prose_numbers.py`` accepts a number in the book's prose that equals one of these. Explained in
    the chapter "Introduction" (book/intro), with the paper's version.
    """
    found: list[float] = []

    def walk(v, percent=True):
        if isinstance(v, bool) or v is None:
            return
        if isinstance(v, numbers.Real):
            found.append(float(v))
            if percent and 0 < v < 1:
                found.append(round(100 * float(v), 6))     # 0.62 printed as 62%
                found.append(float(round(100 * float(v))))  # 139/224 printed as 62%
        elif isinstance(v, dict):
            for k, item in v.items():
                walk(k, percent)
                walk(item, percent)
        elif isinstance(v, (tuple, list)):
            for item in v:
                walk(item, percent)

    for name, v in globals().items():
        if name.isupper() and not name.startswith("_"):
            walk(v, percent=name not in _NEVER_PERCENT)
    return found


# Scores the paper never prints as percentages: their spreads (0.015) would otherwise let a typed 1.5 pass.
_NEVER_PERCENT = {"CORRESPONDENCE_TABLE1"}
