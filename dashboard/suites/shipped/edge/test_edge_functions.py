"""Each configured edge function, by name: its status, its answer's shape, its latency.

Status and latency are checked for every function; the shape (content type and body)
only where `[edge.contract]` declares one, and a function without one has its shape
test skipped with that reason: an unchecked shape is never reported as a pass.
"""

from __future__ import annotations

import pytest

from dashboard.config_types import EdgeTarget

from .contract import answer_problems, budget_ms, percentile, shown


def _where(index: int) -> str:
    return "the first call" if index == 0 else f"call {index}"


def test_function_answers_its_expected_status(edge: EdgeTarget, answers):
    wrong = [(i, a) for i, a in enumerate(answers) if a.status != edge.expect_status]
    if not wrong:
        return
    index, first = wrong[0]
    said = first.error or f"{first.status} {first.text}"
    pytest.fail(f"{edge.name} {edge.method}: {len(wrong)} of {len(answers)} calls did not answer "
                f"{edge.expect_status}; {_where(index)}: {said}", pytrace=False)


def test_function_answers_the_shape_its_contract_declares(edge: EdgeTarget, answers, config):
    contract = edge.contract
    if contract is None or (contract.body is None and contract.content_type is None):
        pytest.skip(f"{edge.name}: no [edge.contract] content_type or body in {config.path}: "
                    "its answer's shape was not checked")
    judged = [(i, a) for i, a in enumerate(answers) if a.status == edge.expect_status]
    if not judged:
        statuses = sorted({str(a.status or a.error) for a in answers})
        pytest.fail(f"{edge.name}: no answer with status {edge.expect_status} to check the shape of "
                    f"(got {', '.join(statuses)})", pytrace=False)
    for index, answer in judged:
        problems = answer_problems(contract, answer)
        if problems:
            pytest.fail(f"{edge.name} answered {answer.status} with the wrong shape ({_where(index)}): "
                        f"{shown(problems)}; the answer began: {answer.text[:200]}", pytrace=False)


def test_function_answers_within_its_latency_budget(edge: EdgeTarget, answers, config):
    budget = budget_ms(edge, config.timeout)
    timed = [a for a in answers if a.timed]
    latencies = [a.elapsed_ms for a in timed]
    p95 = percentile(latencies, 0.95)
    figures = (f"p50 {percentile(latencies, 0.5):.1f} ms, p95 {p95:.1f} ms, max {max(latencies):.1f} ms "
               f"over {len(timed)} calls")
    source = "[edge.contract] latency_ms" if edge.contract and edge.contract.latency_ms else "the config's timeout"
    print(f"{edge.name}: {figures} (budget {budget:g} ms, {source})")
    if p95 > budget:
        pytest.fail(f"{edge.name} is slower than its budget: {figures}; budget {budget:g} ms ({source})",
                    pytrace=False)
