#!/usr/bin/env bash
# Flickr8k from scratch: CLIP, label smoothing, Object-IoU, AlignCLIP and detector-free SoftCLIP,
# same budget, 3 seeds; val retrieval (5-caption protocol) and the logit distribution (Fig. 6).
# Needs: Flickr8k-layout shards in $ALIGNCLIP_DATA_ROOT/flickr8k (or data.source=KAGGLE_DIR to
# convert); its nouns.txt (vocab parser) or stanza's English models (pos parser).
# Usage: recipes/mini/flickr8k.sh [OVERRIDES...] [--dry-run]     SMOKE=1 recipes/mini/flickr8k.sh
#   e.g. model=ViT-Tiny-96 schedule.epochs=20 schedule.lr=1e-3 schedule.global_batch=256
#        seeds=[0,1,2,3,4] model.force_image_size=128; one GPU: model=RN50 (224 px)
# (recipes/lib.sh and docs/mini.md: overrides, data, budgets)
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
# smoke: a rendered Kaggle-layout folder converted to shards, tiny model, 2 seeds (for the SEs)
SMOKE_SCALE=(model=tiny data=flickr8k_smoke schedule=smoke "seeds=[0,1]")
SMOKE_LOOKUP=(--model tiny --data flickr8k_smoke)
EXTRA_TABLES=(mini/flickr8k_logits)
LOOKUP_OVERRIDES=1
recipe mini/flickr8k "$@"
