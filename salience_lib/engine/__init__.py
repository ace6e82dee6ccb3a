"""The measurement engine: one streaming pass per model feeds every measure (:func:`evaluate`)."""

from salience_lib.engine.run import Engine, Measured, common_image_size, evaluate
from salience_lib.engine.settings import MEASURES, EngineSettings, SettingsError

__all__ = ["MEASURES", "Engine", "EngineSettings", "Measured", "SettingsError", "common_image_size", "evaluate"]
