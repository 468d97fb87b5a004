using TorchSharp.Modules;
using static TorchSharp.torch;

namespace JestMesh.Models;

/// <summary>Optimiser settings: AdamW (β2 = 0.95, the paper's fix for spikes at f = 0.8), linear warm-up then cosine decay, gradient clipping.</summary>
public sealed record TrainingOptions
{
    public double LearningRate { get; init; } = 1e-3;

    public double WeightDecay { get; init; } = 1e-4;

    public double Beta1 { get; init; } = 0.9;

    public double Beta2 { get; init; } = 0.95;

    public int WarmupSteps { get; init; } = 100;

    public required int TotalSteps { get; init; }

    public double ClipNorm { get; init; } = 1.0;

    public void Validate()
    {
        if (TotalSteps <= 0)
        {
            throw new ArgumentOutOfRangeException(nameof(TotalSteps), TotalSteps, "TotalSteps must be positive.");
        }

        if (WarmupSteps < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(WarmupSteps), WarmupSteps, "WarmupSteps must be ≥ 0.");
        }

        if (!(LearningRate > 0))
        {
            throw new ArgumentOutOfRangeException(nameof(LearningRate), LearningRate, "LearningRate must be positive.");
        }
    }
}

/// <summary>Runs optimiser steps for any module: one dispose scope per step, so no step leaks native tensors.</summary>
public sealed class ModelTrainer : IDisposable
{
    private readonly nn.Module _module;
    private readonly OptimizerHelper _optimizer;
    private readonly Parameter[] _parameters;

    public ModelTrainer(nn.Module module, TrainingOptions options)
    {
        ArgumentNullException.ThrowIfNull(module);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        _module = module;
        Options = options;
        _parameters = [.. module.parameters()];
        _optimizer = optim.AdamW(_parameters, options.LearningRate, options.Beta1, options.Beta2, weight_decay: options.WeightDecay);
    }

    public TrainingOptions Options { get; }

    /// <summary>Optimiser steps taken so far.</summary>
    public int Step { get; private set; }

    /// <summary>Linear warm-up to the peak, then cosine decay to zero at TotalSteps.</summary>
    public double LearningRateAt(int step)
    {
        if (step < Options.WarmupSteps)
        {
            return Options.LearningRate * (step + 1) / Options.WarmupSteps;
        }

        var span = Math.Max(1, Options.TotalSteps - Options.WarmupSteps);
        var progress = Math.Min(1.0, (double)(step - Options.WarmupSteps) / span);
        return Options.LearningRate * 0.5 * (1 + Math.Cos(Math.PI * progress));
    }

    /// <summary>One step on the loss that <paramref name="loss"/> builds; returns the loss value.</summary>
    public float TrainStep(Func<Tensor> loss)
    {
        ArgumentNullException.ThrowIfNull(loss);
        using var scope = NewDisposeScope();
        var lr = LearningRateAt(Step);
        foreach (var group in _optimizer.ParamGroups)
        {
            group.LearningRate = lr;
        }

        _module.train();
        _optimizer.zero_grad();
        var value = loss();
        value.backward();
        nn.utils.clip_grad_norm_(_parameters, Options.ClipNorm);
        _optimizer.step();
        Step++;
        return value.item<float>();
    }

    /// <summary>Writes the optimiser's state (AdamW moments and step counts) to <paramref name="path"/>.</summary>
    public void SaveState(string path) => _optimizer.save_state_dict(path);

    /// <summary>Restores the optimiser's state written by <see cref="SaveState"/> and the step count, so training resumes exactly.</summary>
    public void LoadState(string path, int step)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(step);
        _optimizer.load_state_dict(path);
        Step = step;
    }

    public void Dispose() => _optimizer.Dispose();
}
