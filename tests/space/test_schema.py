import json

import numpy as np
import pytest

from chamtvm.space.schema import Arch, SearchSpace, SpaceError, bundled_spaces


@pytest.mark.parametrize("name", ["small", "mobilenetv2", "fashion"])
def test_bundled_spaces_load_and_roundtrip(name):
    space = SearchSpace.load(name)
    assert SearchSpace.from_dict(space.to_dict()) == space
    rng = np.random.default_rng(1)
    for _ in range(20):
        arch = space.sample(rng)
        assert Arch.from_json(arch.to_json()) == arch
        vec = space.encode(arch)
        assert vec.shape == (space.encoding_length,)
        assert ((vec >= 0) & (vec <= 1)).all()
        assert space.decode(vec) == arch


def test_mobilenetv2_space_has_seven_stages_with_mbv2_strides():
    space = SearchSpace.load("mobilenetv2")
    assert [s.stride for s in space.stages] == [1, 2, 2, 2, 1, 2, 1]
    assert set(bundled_spaces()) >= {"small", "mobilenetv2", "fashion"}


def test_sampling_mutation_crossover_are_seeded():
    space = SearchSpace.load("small")

    def run(seed):
        rng = np.random.default_rng(seed)
        a, b = space.sample(rng), space.sample(rng)
        return [a, b, space.mutate(a, rng), space.crossover(a, b, rng)]

    assert run(3) == run(3)
    assert run(3) != run(4)


def test_mutation_changes_something_and_stays_valid():
    space = SearchSpace.load("small")
    rng = np.random.default_rng(0)
    for _ in range(50):
        a = space.sample(rng)
        m = space.mutate(a, rng, prob=0.0)
        assert m != a
        space.validate(m)


def test_crossover_takes_each_gene_from_a_parent():
    space = SearchSpace.load("small")
    rng = np.random.default_rng(5)
    a, b = space.sample(rng), space.sample(rng)
    child = space.crossover(a, b, rng)
    for x, y, c in zip(space.indices(a), space.indices(b), space.indices(child)):
        assert c in (x, y)


def test_invalid_architecture_names_the_field():
    space = SearchSpace.load("small")
    d = space.sample(np.random.default_rng(0)).to_dict()
    d["stages"][2]["kernel"] = 7
    with pytest.raises(SpaceError, match=r"stages\[2\]\.kernel=7 is not allowed.*choices: \[3, 5\]"):
        space.validate(Arch.from_dict(d))
    with pytest.raises(SpaceError, match="missing fields"):
        Arch.from_dict({"resolution": 64})
    bad = dict(d, resolution=-1)
    with pytest.raises(SpaceError, match="resolution: expected a positive integer"):
        Arch.from_dict(bad)
    with pytest.raises(SpaceError, match="not valid JSON"):
        Arch.from_json("{nope")
    short = dict(d, stages=d["stages"][:3])
    with pytest.raises(SpaceError, match="3 stages"):
        space.validate(Arch.from_dict(short))


def test_invalid_space_is_refused_with_reason():
    good = SearchSpace.load("small").to_dict()
    bad = json.loads(json.dumps(good))
    bad["stages"][1]["kernel"] = [3, 4]
    with pytest.raises(SpaceError, match="kernels must be odd"):
        SearchSpace.from_dict(bad)
    bad = json.loads(json.dumps(good))
    bad["stages"][0]["stride"] = 3
    with pytest.raises(SpaceError, match="stride: must be 1 or 2"):
        SearchSpace.from_dict(bad)
    bad = json.loads(json.dumps(good))
    bad["resolution"] = [8]
    with pytest.raises(SpaceError, match="smaller than the total stride"):
        SearchSpace.from_dict(bad)
    with pytest.raises(SpaceError, match="unknown space 'nope'"):
        SearchSpace.load("nope")
