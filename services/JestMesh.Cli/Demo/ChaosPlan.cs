using System.Text.Json.Serialization;

namespace JestMesh.Cli.Demo;

/// <summary>What <c>./jestmesh chaos</c> kills.</summary>
internal static class ChaosComponents
{
    public const string Broker = "broker";
    public const string Scoring = "scoring";
    public const string Selection = "selection";
    public const string Trainer = "trainer";

    public static IReadOnlyList<string> All { get; } = [Broker, Scoring, Selection, Trainer];
}

/// <summary>
/// One trial's kill: <paramref name="Component"/> replica <paramref name="Replica"/> (a broker node by index, a Scoring or
/// Selection replica, a trainer by job), or for a broker with <paramref name="Leader"/> the node leading the first job's
/// queue; SIGKILLed when <paramref name="AtFraction"/> of the fault-free run's training time has passed.
/// </summary>
internal sealed record ChaosKill(int Trial, string Component, int Replica, bool Leader, double AtFraction);

/// <summary>The seeded kill plan of a chaos run: the seed alone decides every trial's component, replica and moment.</summary>
internal static class ChaosPlan
{
    /// <summary>Kills happen between these fractions of the trainers' steps (not at the very start or end).</summary>
    public const double EarliestFraction = 0.15;
    public const double LatestFraction = 0.75;

    /// <summary>
    /// <paramref name="trials"/> kills from <paramref name="seed"/>: every block of trials kills each kind of component
    /// (of <paramref name="components"/>, default all four) once, in a seeded order, so even a short run covers them all;
    /// replica, leader choice and moment are seeded draws.
    /// </summary>
    public static IReadOnlyList<ChaosKill> Create(int trials, int seed, int brokerNodes, int scoringReplicas, int selectionReplicas, int trainers, IReadOnlyList<string>? components = null)
    {
        components ??= ChaosComponents.All;
        var unknown = components.FirstOrDefault(c => !ChaosComponents.All.Contains(c));
        if (components.Count == 0 || unknown is not null)
        {
            throw new ArgumentException($"chaos components must be some of {string.Join(", ", ChaosComponents.All)}{(unknown is null ? "" : $", not '{unknown}'")}.");
        }

        ArgumentOutOfRangeException.ThrowIfNegative(trials);
        var random = new Random(seed);
        var kills = new List<ChaosKill>(trials);
        var block = new List<string>();
        for (var trial = 0; trial < trials; trial++)
        {
            if (block.Count == 0)
            {
                block.AddRange(components);
                random.Shuffle(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(block));
            }

            var component = block[^1];
            block.RemoveAt(block.Count - 1);
            var replicas = component switch
            {
                ChaosComponents.Broker => brokerNodes,
                ChaosComponents.Scoring => scoringReplicas,
                ChaosComponents.Selection => selectionReplicas,
                _ => trainers,
            };
            var replica = random.Next(replicas);
            var leader = component == ChaosComponents.Broker && random.Next(2) == 0;
            var at = EarliestFraction + ((LatestFraction - EarliestFraction) * random.NextDouble());
            kills.Add(new ChaosKill(trial, component, replica, leader, Math.Round(at, 4)));
        }

        return kills;
    }
}

/// <summary>What one trainer's job left behind, read only through public contracts.</summary>
/// <param name="Job">The job.</param>
/// <param name="Produced">Super-batch ids Ingest was told to publish (job/0 … job/M−1), with <paramref name="SuperBatchSize"/> examples each.</param>
/// <param name="SuperBatchSize">Examples per super-batch (N).</param>
/// <param name="Trained">The trainer's run summary: super-batch id of every batch trained, in step order (trained_super_batch_ids).</param>
/// <param name="Logged">Selection's batch log for the trainer's session, by sequence.</param>
/// <param name="DeadLettered">The job's messages taken off the dead-letter queue.</param>
/// <param name="Baseline">The same job's trained ids in the fault-free run, job names stripped (null: this is the baseline).</param>
internal sealed record JobEvidence(string Job, IReadOnlyList<string> Produced, int SuperBatchSize, IReadOnlyList<string> Trained,
    IReadOnlyList<LoggedBatch> Logged, IReadOnlyList<DeadLetter> DeadLettered, IReadOnlyList<string>? Baseline);

/// <summary>One job's accounting: examples lost or with more than one effect, and whether the trainer trained exactly what was recorded.</summary>
internal sealed record JobAccount
{
    [JsonPropertyName("job")] public required string Job { get; init; }

    /// <summary>Produced examples neither trained, filtered nor dead-lettered.</summary>
    [JsonPropertyName("lost")] public long Lost { get; init; }

    /// <summary>Effects beyond the first: an example trained, filtered or dead-lettered more than once.</summary>
    [JsonPropertyName("duplicated")] public long Duplicated { get; init; }

    /// <summary>The trainer's trained sequence differs from its session's batch log 1..T (exact resumption broken).</summary>
    [JsonPropertyName("sequence_mismatch")] public bool SequenceMismatch { get; init; }

    /// <summary>The trained sequence equals the fault-free run's (null for the baseline itself).</summary>
    [JsonPropertyName("equals_baseline")] public bool? EqualsBaseline { get; init; }

    /// <summary>The same super-batches were trained as in the fault-free run, in any order (null for the baseline itself).</summary>
    [JsonPropertyName("same_set_as_baseline")] public bool? SameSetAsBaseline { get; init; }

    [JsonPropertyName("problems")] public IReadOnlyList<string> Problems { get; init; } = [];
}

/// <summary>The exactly-once and exact-resumption checks of a chaos trial (pure: evidence in, account out).</summary>
internal static class ChaosAccounting
{
    /// <summary>
    /// Every produced example must have exactly one effect: trained or filtered in the one batch the trainer trained on for its
    /// super-batch (that batch, as the log recorded it, a partition of the N examples), or dead-lettered. The trainer's trained
    /// sequence must be its session's batch log 1..T, super-batch for super-batch.
    /// </summary>
    public static JobAccount Account(JobEvidence evidence)
    {
        ArgumentNullException.ThrowIfNull(evidence);
        var problems = new List<string>();
        var n = evidence.SuperBatchSize;
        var effects = evidence.Produced.ToDictionary(id => id, _ => 0L, StringComparer.Ordinal);
        long lost = 0, duplicated = 0;
        var bySequence = evidence.Logged.GroupBy(b => b.Sequence).ToDictionary(g => g.Key, g => g.First());
        for (var step = 0; step < evidence.Trained.Count; step++)
        {
            var id = evidence.Trained[step];
            if (!effects.TryGetValue(id, out var seen))
            {
                problems.Add($"step {step + 1} trained '{id}', which Ingest did not produce for {evidence.Job}");
                continue;
            }

            effects[id] = seen + n;
            if (bySequence.GetValueOrDefault(step + 1) is { } logged && logged.SuperBatchId == id)
            {
                // The batch must account for every example of its super-batch once: selected or filtered.
                var accounted = logged.Selected + logged.Filtered;
                if (accounted != n || !logged.DistinctIds)
                {
                    problems.Add($"batch {step + 1} ({id}) accounts for {accounted} of {n} examples{(logged.DistinctIds ? "" : ", repeating an id")}");
                    lost += Math.Max(0, n - accounted);
                    duplicated += Math.Max(0, accounted - n);
                }
            }
        }

        foreach (var dead in evidence.DeadLettered)
        {
            if (effects.TryGetValue(dead.SuperBatchId, out var seen))
            {
                effects[dead.SuperBatchId] = seen + dead.Examples;
                lost += Math.Max(0, n - dead.Examples);
            }
            else
            {
                problems.Add($"dead-lettered '{dead.SuperBatchId}', which Ingest did not produce for {evidence.Job}");
            }
        }

        foreach (var (id, count) in effects)
        {
            if (count == 0)
            {
                lost += n;
                problems.Add($"{id} was neither trained nor dead-lettered");
            }
            else if (count > n)
            {
                duplicated += count - n;
                problems.Add($"{id} had {count / n} effects");
            }
        }

        var logged1ToT = Enumerable.Range(1, evidence.Trained.Count).Select(s => bySequence.GetValueOrDefault(s)?.SuperBatchId).ToList();
        var mismatch = !logged1ToT.SequenceEqual(evidence.Trained);
        if (mismatch)
        {
            var first = Enumerable.Range(0, evidence.Trained.Count).First(i => logged1ToT[i] != evidence.Trained[i]);
            problems.Add($"step {first + 1}: trained '{evidence.Trained[first]}', the batch log's sequence {first + 1} is '{logged1ToT[first] ?? "(none)"}'");
        }

        var trained = evidence.Trained.Select(Unqualified).ToList();
        bool? equalsBaseline = evidence.Baseline?.SequenceEqual(trained);
        bool? sameSet = evidence.Baseline is null ? null : evidence.Baseline.Order(StringComparer.Ordinal).SequenceEqual(trained.Order(StringComparer.Ordinal));
        return new JobAccount
        {
            Job = evidence.Job,
            Lost = lost,
            Duplicated = duplicated,
            SequenceMismatch = mismatch,
            EqualsBaseline = equalsBaseline,
            SameSetAsBaseline = sameSet,
            Problems = problems,
        };
    }

    /// <summary>A super-batch id without its job (job/7 → 7): the same position in two jobs' streams compares equal.</summary>
    public static string Unqualified(string superBatchId)
    {
        ArgumentNullException.ThrowIfNull(superBatchId);
        return superBatchId[(superBatchId.LastIndexOf('/') + 1)..];
    }
}
