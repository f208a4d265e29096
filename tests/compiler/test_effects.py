import ast

from nbscale.compiler import effects


def expr(text):
    return ast.parse(text).body[0].value


def stmt(text):
    return ast.parse(text).body[0]


def test_root_name_follows_attribute_and_subscript_chains():
    assert effects.root_name(expr("df['x'].loc[0].values")) == "df"
    assert effects.root_name(expr("make().x")) is None


def test_target_names_and_mutations():
    target = stmt("a, (b, *c), d.x, e[0] = v").targets[0]
    assert effects.target_names(target) == ["a", "b", "c"]
    assert effects.mutated_by_target(target) == {"d", "e"}


def test_method_calls_mutate_their_receiver_unless_read_only():
    assert effects.mutated_by_call(expr("model.fit(X, y)")) == {"model"}
    assert effects.mutated_by_call(expr("df.head()")) == set()
    assert effects.mutated_by_call(expr("df.fillna(0, inplace=True)")) == {"df"}
    assert effects.mutated_by_call(expr("df['a'].fillna(0, inplace=True)")) == {"df"}
    assert effects.mutated_by_call(expr("df.copy().fillna(0, inplace=True)")) == set()


def test_known_in_place_functions_mutate_their_arguments():
    assert effects.mutated_by_call(expr("np.random.shuffle(order)")) == {"order", "np"}
    assert effects.mutated_by_call(expr("random.shuffle(deck)")) == {"deck", "random"}
    assert effects.mutated_by_call(expr("train_test_split(X, y)")) == set()


def test_dynamic_calls():
    assert effects.is_dynamic_call(expr("exec(code)"))
    assert effects.is_dynamic_call(expr("globals()"))
    assert effects.is_dynamic_call(expr("vars()"))
    assert not effects.is_dynamic_call(expr("vars(obj)"))


def test_alias_groups_from_containers_loops_and_appends():
    groups = effects.AliasGroups()
    groups.add_assign(stmt("data = [train, test]").targets, stmt("data = [train, test]").value)
    loop = stmt("for df in data: pass")
    groups.add_loop(loop.target, loop.iter)
    assert groups.group_of("df") == {"df", "data", "train", "test"}
    groups.add_call(expr("bag.append(item)"))
    assert groups.group_of("bag") == {"bag", "item"}
    assert groups.group_of("other") == {"other"}


def test_loop_over_enumerate_and_items_aliases_the_container():
    groups = effects.AliasGroups()
    for text in ("for i, df in enumerate(frames): pass", "for k, v in tables.items(): pass"):
        loop = stmt(text)
        groups.add_loop(loop.target, loop.iter)
    assert "frames" in groups.group_of("df")
    assert "tables" in groups.group_of("v")


def test_call_results_do_not_alias():
    groups = effects.AliasGroups()
    s = stmt("X = df.copy()")
    groups.add_assign(s.targets, s.value)
    assert groups.group_of("X") == {"X"}


def test_zip_enumerate_and_items_loops_pair_targets_with_their_own_containers():
    groups = effects.AliasGroups()
    for text in ("for wi, xi in zip(w, x): pass", "for i, v in enumerate(vals): pass",
                 "for k, t in tables.items(): pass"):
        loop = stmt(text)
        groups.add_loop(loop.target, loop.iter)
    assert groups.group_of("wi") == {"wi", "w"} and groups.group_of("xi") == {"xi", "x"}
    assert groups.group_of("v") == {"v", "vals"} and "i" not in groups.group_of("vals")
    assert groups.group_of("t") == {"t", "tables"}


def test_enumerate_of_zip_pairs_each_target_with_its_container():
    groups = effects.AliasGroups()
    loop = stmt("for j, (wi, xi) in enumerate(zip(w, x)): pass")
    groups.add_loop(loop.target, loop.iter)
    assert groups.group_of("wi") == {"wi", "w"} and groups.group_of("xi") == {"xi", "x"}
