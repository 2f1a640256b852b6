"""The dataset tables of the spec schema are closed, and accept exactly the keys ocdsl.data reads."""

from ocdsl.data.registry import CONFIG_KEYS, EVAL_CONFIG_KEYS
from ocdsl.spec.schema import spec_schema


def test_schema_dataset_keys_are_the_readers_keys():
    schema = spec_schema()
    data = schema["$defs"]["dataset"]
    assert set(data["properties"]) == set(CONFIG_KEYS) and data["additionalProperties"] is False
    entry = schema["properties"]["eval"]["properties"]["datasets"]["items"]
    assert set(entry["properties"]) == set(EVAL_CONFIG_KEYS) and entry["additionalProperties"] is False


def test_schema_augment_keys_are_the_views_keys():
    from ocdsl.data.views import AUGMENT_KEYS

    aug = spec_schema()["$defs"]["dataset"]["properties"]["augment"]
    assert set(aug["properties"]) == set(AUGMENT_KEYS) and aug["additionalProperties"] is False
