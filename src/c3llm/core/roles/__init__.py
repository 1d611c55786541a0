"""Role contracts: what every implementation of a role must provide.

One module per role; shapes are in the docstrings (B batch, C channels, T samples,
Q codebooks, S code frames, N feature frames, D width, V vocabulary).
"""

from c3llm.core.roles.backbone import Backbone, BackboneOutput, SpecialTokens
from c3llm.core.roles.base import Component
from c3llm.core.roles.dataset import Dataset, Sample, SkippedItem
from c3llm.core.roles.decoder import Decoder, FittableDecoder, TrainableDecoder
from c3llm.core.roles.encoder import Encoder, Features
from c3llm.core.roles.metric import Metric
from c3llm.core.roles.refiner import Refiner

#: role name -> contract class (the registry checks registrations against it).
CONTRACTS = {
    "decoder": Decoder,
    "encoder": Encoder,
    "backbone": Backbone,
    "refiner": Refiner,
    "dataset": Dataset,
    "metric": Metric,
}

__all__ = [
    "CONTRACTS",
    "Backbone",
    "BackboneOutput",
    "Component",
    "Dataset",
    "Decoder",
    "FittableDecoder",
    "TrainableDecoder",
    "Encoder",
    "Features",
    "Metric",
    "Refiner",
    "Sample",
    "SkippedItem",
    "SpecialTokens",
]
