"""The prefixes of a CLIP model name that say where its files are, instead of open_clip's names."""

LOCAL_DIR, HF_HUB = "local-dir:", "hf-hub:"
# A model named with one of these brings its own weights: a pretrained tag does not apply.
SELF_CONTAINED_CLIP = (LOCAL_DIR, HF_HUB)
