"""Mirror of `restate.serde`: re-exports from perdure.sdk.serde."""

from perdure.sdk.serde import (  # noqa: F401
    BytesSerde,
    DefaultSerde,
    JsonSerde,
    MsgspecJsonSerde,
    PydanticJsonSerde,
    Serde,
    is_pydantic,
)
