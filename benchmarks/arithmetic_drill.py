"""How fast does the default tiny model learn the world's column arithmetic? A learning curve, not a speed claim.

    python benchmarks/arithmetic_drill.py --steps 150          # about 4 minutes on 2 CPU cores

Trains the default-shaped tiny model (the default tokenizer, digits split one by one) from scratch on an
endless stream of the teacher's worked column operations (`47+38:` then `7+8+0=15`, `4+3+1=8`, `47+38=85`),
packed into fixed-length rows with no padding, no prompt and no chat template: the cheapest arithmetic
curriculum there is. Every 25 steps it prints the loss and the accuracy of the first token after each `=`
on a fresh batch (the computed digit; about 0.1 is chance). If this curve is still low after as many tokens
as the whole default SFT budget, SFT on word problems cannot teach arithmetic either.
"""

import argparse
import random
import time

from stair.modeling import TinyModelConfig, init_tiny_model, train_tokenizer
from stair.world import arithmetic
from stair.world.generator import WorldConfig, generate_world


def operation(rng: random.Random) -> str:
    """One worked operation on a value in 2..98, its operand drawn as the world draws it."""
    op, x = rng.choice("+-*"), rng.randint(2, arithmetic.MAX_VALUE - 1)
    y = arithmetic.draw_operand(rng, x, op)
    return operation(rng) if y is None else arithmetic.column_work(x, op, y)


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--length", type=int, default=128, help="tokens per packed row")
    parser.add_argument("--learning-rate", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)
    world = generate_world(WorldConfig(math_work="columns", seed=args.seed))
    tokenizer = train_tokenizer([e.prompt for e in world.sft] + [e.response for e in world.sft],
                                TinyModelConfig().vocab_size)
    model = init_tiny_model(tokenizer, TinyModelConfig(seed=args.seed))
    equals = tokenizer("=")["input_ids"][-1]

    def batch():
        rows = []
        for _ in range(args.batch_size):
            ids: list[int] = []
            while len(ids) <= args.length:
                ids += tokenizer(operation(rng) + "\n\n")["input_ids"]
            rows.append(ids[: args.length + 1])
        return torch.tensor(rows)

    def result_accuracy() -> float:
        model.eval()
        with torch.no_grad():
            rows = batch()
            predicted = model(rows[:, :-1]).logits.argmax(-1)
            after_equals = torch.zeros_like(rows[:, 1:], dtype=torch.bool)
            after_equals[:, 1:] = rows[:, 1:-1] == equals
            accuracy = (predicted[after_equals] == rows[:, 1:][after_equals]).float().mean().item()
        model.train()
        return accuracy

    optimizer = torch.optim.AdamW(model.parameters(), lr=args.learning_rate, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min(1.0, (step + 1) / 10) * max(0.05, 1 - step / args.steps))
    start, tokens = time.perf_counter(), 0
    for step in range(args.steps):
        rows = batch()
        logits = model(rows[:, :-1]).logits
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), rows[:, 1:].reshape(-1))
        loss.backward()
        optimizer.step()
        schedule.step()
        optimizer.zero_grad()
        tokens += rows[:, 1:].numel()
        if step % 25 == 0 or step == args.steps - 1:
            print(f"step {step:4d}  tokens {tokens:8d}  loss {loss.item():.3f}  "
                  f"result-digit accuracy {result_accuracy():.3f}  {time.perf_counter() - start:.0f} s", flush=True)


if __name__ == "__main__":
    main()
