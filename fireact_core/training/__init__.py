"""Fine-tuning: configs, data preparation, local training (transformers + peft), OpenAI jobs, the job runner.

Importing this package is cheap; torch, transformers and peft are imported inside the functions that use them.
"""

from .config import ConfigError, LocalTrainConfig, OpenAITrainConfig, form_fields
from ..records import RegisteredModel, TrainJob

__all__ = ["ConfigError", "LocalTrainConfig", "OpenAITrainConfig", "form_fields", "RegisteredModel", "TrainJob"]
