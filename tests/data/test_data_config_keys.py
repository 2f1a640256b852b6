"""The dataset tables of the spec schema are closed, and accept exactly the keys ocdsl.data reads."""

from ocdsl.data.registry import CONFIG_KEYS, EVAL_CONFIG_KEYS
from ocdsl.spec.schema import spec_schema


def test_schema_dataset_keys_are_the_readers_keys():
    schema = spec_schema()
    data = schema["$defs"]["dataset"]
    assert set(data["properties"]) == set(CONFIG_KEYS) and data["additionalProperties"] is False
    entry = schema["properties"]["eval"]["properties"]["datasets"]["items"]
    assert set(entry["properties"]) == set(EVAL_CONFIG_KEYS) and entry["additionalProperties"] is False
