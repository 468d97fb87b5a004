"""The committed descriptor set is what scripts/generate.sh makes from protos/ now."""

import subprocess

from google.protobuf import descriptor_pb2

from conftest import PACKAGE


def _files(path):
    with open(path, "rb") as f:
        files = descriptor_pb2.FileDescriptorSet.FromString(f.read())
    return {file.name: file for file in files.file}


def test_committed_descriptor_set_is_current(tmp_path):
    fresh = tmp_path / "fresh.binpb"
    subprocess.run([str(PACKAGE / "scripts" / "generate.sh"), str(fresh)], check=True)
    committed = _files(PACKAGE / "jestmesh" / "descriptors" / "jestmesh_v1.binpb")
    assert committed == _files(fresh), "protos/ changed: run clients/python/scripts/generate.sh and commit the result"


def test_message_classes_round_trip_including_proto3_optional():
    from jestmesh._proto import enums, pb, service_methods

    example = pb.Example(id=5, label=0, image=b"\x01" * 784, caption_tokens=[3, 4, 0])
    again = pb.Example.FromString(example.SerializeToString())
    assert again.HasField("label") and again.label == 0
    assert not pb.Example(id=5).HasField("label")
    assert enums["Policy"]["POLICY_UNIFORM"] == 4
    methods = service_methods()
    assert methods["Curate"][0] == "/jestmesh.v1.Curation/Curate" and methods["Curate"][3:] == (True, True)
    assert methods["StreamBatches"][3:] == (False, True)
