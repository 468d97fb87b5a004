using JestMesh.Cli.Demo;

namespace JestMesh.Cli.Tests.Demo;

/// <summary>
/// <c>./jestmesh chaos</c>'s kill plan (the seed alone decides it) and its accounting of one job (every produced example one
/// effect; the trainer's trained sequence its session's batch log). The command itself runs the local cluster for minutes:
/// README "Chaos" gives the command and benchmarks/results/chaos-*.json its figures.
/// </summary>
[Trait("Tier", "Unit")]
public sealed class ChaosTests
{
    private const int N = 10;
    private const string Job = "chaos-t0-a";

    [Fact]
    public void The_seed_alone_decides_the_plan_and_each_block_of_four_trials_kills_every_kind_once()
    {
        var plan = ChaosPlan.Create(12, seed: 7, brokerNodes: 3, scoringReplicas: 2, selectionReplicas: 2, trainers: 2);

        Assert.Equal(plan, ChaosPlan.Create(12, seed: 7, brokerNodes: 3, scoringReplicas: 2, selectionReplicas: 2, trainers: 2));
        Assert.NotEqual(plan, ChaosPlan.Create(12, seed: 8, brokerNodes: 3, scoringReplicas: 2, selectionReplicas: 2, trainers: 2));
        foreach (var block in plan.Chunk(4))
        {
            Assert.Equal(ChaosComponents.All.Order(), block.Select(k => k.Component).Order());
        }
        Assert.All(plan, k => Assert.InRange(k.AtFraction, ChaosPlan.EarliestFraction, ChaosPlan.LatestFraction));
        Assert.All(plan, k => Assert.InRange(k.Replica, 0, k.Component == ChaosComponents.Broker ? 2 : 1));
        Assert.All(plan.Where(k => k.Component != ChaosComponents.Broker), k => Assert.False(k.Leader));
        Assert.Equal(Enumerable.Range(0, 12), plan.Select(k => k.Trial));
    }

    [Fact]
    public void A_plan_restricted_to_some_components_kills_only_those_and_an_unknown_one_is_named()
    {
        var plan = ChaosPlan.Create(6, seed: 1, 3, 2, 2, 2, [ChaosComponents.Broker]);
        Assert.All(plan, k => Assert.Equal(ChaosComponents.Broker, k.Component));

        var error = Assert.Throws<ArgumentException>(() => ChaosPlan.Create(1, seed: 1, 3, 2, 2, 2, ["ingest"]));
        Assert.Contains("not 'ingest'", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_run_that_trained_its_log_once_has_no_loss_duplicate_or_mismatch_and_compares_with_the_baseline_by_position()
    {
        var account = ChaosAccounting.Account(Evidence(trained: [0, 2, 1], logged: [0, 2, 1], baseline: ["0", "1", "2"]));

        Assert.Equal((0L, 0L, false), (account.Lost, account.Duplicated, account.SequenceMismatch));
        Assert.Empty(account.Problems);
        Assert.False(account.EqualsBaseline);
        Assert.True(account.SameSetAsBaseline);
        Assert.True(ChaosAccounting.Account(Evidence(trained: [0, 1, 2], logged: [0, 1, 2], baseline: ["0", "1", "2"])).EqualsBaseline);
    }

    [Fact]
    public void A_super_batch_trained_twice_counts_its_examples_once_as_duplicated_and_the_one_it_displaced_as_lost()
    {
        var account = ChaosAccounting.Account(Evidence(trained: [0, 1, 1], logged: [0, 1, 2], baseline: null));

        Assert.Equal(N, account.Lost);
        Assert.Equal(N, account.Duplicated);
        Assert.True(account.SequenceMismatch);
        Assert.Null(account.EqualsBaseline);
        Assert.Contains(account.Problems, p => p.Contains($"{Job}/2 was neither trained nor dead-lettered", StringComparison.Ordinal));
        Assert.Contains(account.Problems, p => p.Contains("step 3: trained", StringComparison.Ordinal));
    }

    [Fact]
    public void A_dead_lettered_super_batch_is_accounted_and_one_also_trained_is_a_duplicate()
    {
        Assert.Equal((0L, 0L), Totals(ChaosAccounting.Account(Evidence(trained: [0, 1], logged: [0, 1], baseline: null, dead: [2]))));
        Assert.Equal((0L, (long)N), Totals(ChaosAccounting.Account(Evidence(trained: [0, 1, 2], logged: [0, 1, 2], baseline: null, dead: [2]))));
    }

    [Fact]
    public void A_logged_batch_that_is_not_a_partition_of_its_super_batch_loses_the_examples_it_misses()
    {
        var evidence = Evidence(trained: [0], logged: [0], baseline: null) with { Produced = [$"{Job}/0"] };
        evidence = evidence with { Logged = [evidence.Logged[0] with { Filtered = N / 2 - 1 }] };

        var account = ChaosAccounting.Account(evidence);

        Assert.Equal(1, account.Lost);
        Assert.Contains(account.Problems, p => p.Contains($"accounts for {N - 1} of {N}", StringComparison.Ordinal));
    }

    private static (long, long) Totals(JobAccount account) => (account.Lost, account.Duplicated);

    /// <summary>Ingest produced super-batches 0..max(trained, logged, dead); the trainer trained <paramref name="trained"/>, the log holds <paramref name="logged"/> by sequence.</summary>
    private static JobEvidence Evidence(int[] trained, int[] logged, IReadOnlyList<string>? baseline, int[]? dead = null)
    {
        var produced = trained.Concat(logged).Concat(dead ?? []).Max() + 1;
        return new JobEvidence(Job, [.. Enumerable.Range(0, produced).Select(Id)], N, [.. trained.Select(Id)],
            [.. logged.Select((s, i) => new LoggedBatch(Job, "session", i + 1, Id(s), N / 2, 0, N / 2, 1, DistinctIds: true))],
            [.. (dead ?? []).Select(d => new DeadLetter(Job, Id(d), N))], baseline);
    }

    private static string Id(int sequence) => $"{Job}/{sequence}";
}
