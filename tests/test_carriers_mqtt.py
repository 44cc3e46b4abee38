"""MQTT through a real mosquitto broker: paho-mqtt v5 user properties, and a JSON payload."""

from __future__ import annotations

import json
import queue

import pytest
from opentelemetry.sdk.trace import TracerProvider

from otel_dd_lambda import extract_context, ids, inject
from otel_dd_lambda.carriers.mqtt import UserPropertiesGetter, UserPropertiesSetter
from tests.support import mosquitto


@pytest.fixture(scope="module")
def broker():
    with mosquitto.mosquitto() as address:
        yield address


def _client(broker, received=None):
    import paho.mqtt.client as mqtt

    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    if received is not None:
        c.on_message = lambda client, userdata, message: received.put(message)
    c.connect(*broker)
    c.loop_start()
    return c


def _round_trip(broker, topic, payload, properties):

    received: "queue.Queue" = queue.Queue()
    sub = _client(broker, received)
    subscribed: "queue.Queue" = queue.Queue()
    sub.on_subscribe = lambda *a: subscribed.put(True)
    sub.subscribe(topic, qos=1)
    subscribed.get(timeout=30)
    pub = _client(broker)
    pub.publish(topic, payload, qos=1, properties=properties).wait_for_publish(30)
    try:
        return received.get(timeout=30)
    finally:
        for c in (pub, sub):
            c.loop_stop()
            c.disconnect()


def test_user_properties_round_trip(broker):
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    tracer = TracerProvider(id_generator=ids.DatadogXRayIdGenerator()).get_tracer("t")
    props = Properties(PacketTypes.PUBLISH)
    props.UserProperty = ("tenant", "acme")
    with tracer.start_as_current_span("publish") as span:
        assert inject(props, "mqtt")
        assert not inject(props, "mqtt")  # exactly one _datadog
    message = _round_trip(broker, "t/props", b"\x00raw bytes", props)
    assert message.payload == b"\x00raw bytes"
    assert ("tenant", "acme") in message.properties.UserProperty
    result = extract_context(message)
    sc = span.get_span_context()
    assert result.trigger == "mqtt" and (result.parent.trace_id, result.parent.span_id) == (sc.trace_id, sc.span_id)


def test_payload_key_round_trip(broker):
    tracer = TracerProvider().get_tracer("t")
    payload = {"temperature": 21.5}
    with tracer.start_as_current_span("publish") as span:
        assert inject(payload, "mqtt")
    message = _round_trip(broker, "t/payload", json.dumps(payload), None)
    assert json.loads(message.payload)["temperature"] == 21.5
    sc = span.get_span_context()
    assert extract_context(message).parent.span_id == sc.span_id
    # An AWS IoT rule hands the JSON payload to Lambda as the event itself:
    assert extract_context(json.loads(message.payload)).parent.span_id == sc.span_id


def test_header_keys_as_user_properties_with_otel_propagator(broker):
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    tracer = TracerProvider().get_tracer("t")
    props = Properties(PacketTypes.PUBLISH)
    with tracer.start_as_current_span("publish") as span:
        TraceContextTextMapPropagator().inject(props, setter=UserPropertiesSetter())
    message = _round_trip(broker, "t/w3c", b"x", props)
    assert UserPropertiesGetter().get(message.properties, "traceparent")
    assert extract_context(message).parent.span_id == span.get_span_context().span_id
