using System.Text.Json;
using JestMesh.Models;

namespace JestMesh.Learning;

/// <summary>What a trainer checkpoint records besides weights and optimiser: where training stands in its session.</summary>
public sealed record LearnerState
{
    /// <summary>Optimiser steps taken (= curated batches trained on).</summary>
    public int Step { get; init; }

    /// <summary>Sequence of the last curated batch trained on: the session resumes after it.</summary>
    public long Cursor { get; init; }

    public string SessionId { get; init; } = "";

    public string Job { get; init; } = "";

    public List<EvalPoint> Evals { get; init; } = [];

    /// <summary>Super-batch id of every curated batch trained on, in step order (kept with the checkpoint, so a resumed run keeps the whole list).</summary>
    public List<string> SuperBatchIds { get; init; } = [];
}

/// <summary>
/// Model, optimiser and session cursor in one checkpoint, switched atomically: everything is written
/// to a fresh directory, which is renamed into place, then the LATEST pointer is replaced by rename.
/// A crash at any point leaves LATEST naming a complete checkpoint.
/// </summary>
public static class LearnerCheckpoint
{
    public const string PointerFile = "LATEST";
    private const string ModelFile = "model.bin";
    private const string OptimizerFile = "optimizer.bin";
    private const string StateFile = "state.json";

    private static readonly JsonSerializerOptions Json = new() { WriteIndented = true };

    public static void Save(string directory, SiglipModel model, ModelTrainer trainer, LearnerState state)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(trainer);
        ArgumentNullException.ThrowIfNull(state);
        Directory.CreateDirectory(directory);
        var name = $"ckpt-{state.Step:D8}-{Guid.NewGuid():N}";
        var temporary = Path.Combine(directory, name + ".tmp");
        Directory.CreateDirectory(temporary);
        model.save(Path.Combine(temporary, ModelFile));
        trainer.SaveState(Path.Combine(temporary, OptimizerFile));
        WriteDurably(Path.Combine(temporary, StateFile), JsonSerializer.Serialize(state, Json));
        var final = Path.Combine(directory, name);
        Directory.Move(temporary, final);
        var pointer = Path.Combine(directory, PointerFile);
        WriteDurably(pointer + ".tmp", name);
        File.Move(pointer + ".tmp", pointer, overwrite: true);
        foreach (var old in Directory.EnumerateDirectories(directory, "ckpt-*"))
        {
            if (Path.GetFileName(old) != name)
            {
                Directory.Delete(old, recursive: true);
            }
        }
    }

    /// <summary>The latest complete checkpoint's directory and state, or null when there is none.</summary>
    public static (string Path, LearnerState State)? TryReadLatest(string directory)
    {
        var pointer = Path.Combine(directory, PointerFile);
        if (!File.Exists(pointer))
        {
            return null;
        }
        var path = Path.Combine(directory, File.ReadAllText(pointer).Trim());
        var statePath = Path.Combine(path, StateFile);
        if (!File.Exists(statePath))
        {
            throw new InvalidDataException($"checkpoint {pointer} names {path}, which has no {StateFile}: the checkpoint directory was changed by hand.");
        }
        var state = JsonSerializer.Deserialize<LearnerState>(File.ReadAllText(statePath), Json)
            ?? throw new InvalidDataException($"{statePath} is empty.");
        return (path, state);
    }

    /// <summary>Loads weights and optimiser state of the checkpoint at <paramref name="path"/>.</summary>
    public static void Restore(string path, SiglipModel model, ModelTrainer trainer, LearnerState state)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(trainer);
        ArgumentNullException.ThrowIfNull(state);
        model.load(Path.Combine(path, ModelFile), strict: true);
        trainer.LoadState(Path.Combine(path, OptimizerFile), state.Step);
    }

    private static void WriteDurably(string path, string text)
    {
        using var file = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None);
        using (var writer = new StreamWriter(file, leaveOpen: true))
        {
            writer.Write(text);
        }
        file.Flush(flushToDisk: true);
    }
}
