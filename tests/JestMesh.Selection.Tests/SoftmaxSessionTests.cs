using Grpc.Core;
using JestMesh.Curation;
using JestMesh.Learning;
using JestMesh.Protos.V1;
using JestMesh.TestKit;
using CurationClient = JestMesh.Protos.V1.Curation.CurationClient;

namespace JestMesh.Selection.Tests;

/// <summary>
/// Sessions with LOSS_KIND_SOFTMAX over real gRPC on loopback (Kestrel) against the real broker: they select what the
/// in-process selection (CurationStep, and the softmax source with the sampler on their own) selects over the same
/// super-batches with the same seed, whether Scoring attached the reference's InfoNCE losses or not; a scored super-batch
/// whose reference_info_nce breaks the contract is dead-lettered naming it; a learner α the source cannot take is refused.
/// </summary>
[Trait("Tier", "Broker")]
[Collection(SelectionCollection.Name)]
public sealed class SoftmaxSessionTests(SelectionFixture fixture)
{
    private const int N = 64;
    private const int Batches = 3;
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(60);

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task A_softmax_session_selects_what_the_in_process_selection_selects_with_or_without_Scorings_reference_losses(bool attached)
    {
        var options = fixture.Broker.Options(TestNames.Unique(attached ? "softmax-with" : "softmax-without"));
        await using var host = await SelectionHost.StartAsync(options, kestrel: true);
        await using var broker = new BrokerClient(options);
        var learned = await PublishAsync(broker, "job", Batches, attached);
        var easy = await PublishAsync(broker, "easy", 2, attached);
        using var channel = host.Channel();
        var client = new CurationClient(channel);

        // Curate (learnability: the learner's and the reference's losses).
        var open = Sessions.Open("job", Policy.Learnability, chunks: 4, seed: 3);
        open.Loss = LossKind.Softmax;
        List<CuratedBatch> batches;
        using (var call = client.Curate(SelectionHost.Auth()))
        {
            await call.RequestStream.WriteAsync(new CurateRequest { Open = open });
            (_, batches) = await ProtoClient.TrainAsync(call, learned, Batches, Scores);
        }
        Assert.Equal(Batches, batches.Count);
        var differsFromSigmoid = false;
        foreach (var batch in batches)
        {
            var scored = learned.Single(p => p.Id == batch.SuperBatchId);
            var learner = Learner(Scores(scored));
            differsFromSigmoid |= AssertInProcess(open, batch, scored, learner);
        }
        // The session did select with the softmax source, not the sigmoid one.
        Assert.True(differsFromSigmoid, "every softmax batch equals the sigmoid source's selection");

        // StreamBatches (easy-reference: the reference's losses alone).
        var stream = Sessions.Open("easy", Policy.EasyReference, chunks: 4, seed: 5);
        stream.Loss = LossKind.Softmax;
        using var streamCall = client.StreamBatches(new StreamBatchesRequest { Session = stream, MaxBatches = 2 }, SelectionHost.Auth());
        var streamed = new List<CuratedBatch>();
        while (await streamCall.ResponseStream.MoveNext().WaitAsync(Deadline))
        {
            streamed.Add(streamCall.ResponseStream.Current);
        }
        Assert.Equal(easy.Select(e => e.Id), streamed.Select(b => b.SuperBatchId));
        foreach (var batch in streamed)
        {
            AssertInProcess(stream, batch, easy.Single(p => p.Id == batch.SuperBatchId), null);
        }
    }

    [Fact]
    public async Task Scored_super_batches_with_a_bad_reference_info_nce_or_alpha_are_dead_lettered_naming_the_field()
    {
        var options = fixture.Broker.Options(TestNames.Unique("softmax-poison"));
        await using var host = await SelectionHost.StartAsync(options, kestrel: true);
        await using var broker = new BrokerClient(options);

        var shorter = Make("job", 0, attached: true);
        shorter.ReferenceInfoNce.TextToImage.RemoveAt(N - 1);
        var nan = Make("job", 1, attached: true);
        nan.ReferenceInfoNce.ImageToText[7] = double.NaN;
        var alpha = Make("job", 2, attached: false);
        alpha.ReferenceAlpha = float.MaxValue;
        foreach (var bad in new[] { shorter, nan, alpha })
        {
            await ScoredFeeder.PublishAsync(broker.Publisher, broker.Topology, bad);
        }
        var good = Make("job", 3, attached: true);
        await ScoredFeeder.PublishAsync(broker.Publisher, broker.Topology, good);

        var dead = new List<(string? MessageId, byte[] Body, IDictionary<string, object?> Headers)>();
        await Eventually.WaitUntilAsync(async () =>
        {
            dead.AddRange(await broker.GetAllAsync(broker.Topology.DeadLetter));
            return dead.Count >= 3;
        }, Deadline, "three dead-lettered messages");
        var reasons = dead.ToDictionary(d => d.MessageId!, d => Messaging.MessagingTelemetry.HeaderText(d.Headers[Messaging.QueueTopology.ReasonHeader])!);
        Assert.Equal(3, reasons.Count);
        Assert.Contains("reference_info_nce has 64 image_to_text and 63 text_to_image values for 64 examples", reasons["scored/" + shorter.Id], StringComparison.Ordinal);
        Assert.Contains("reference_info_nce of examples[7]", reasons["scored/" + nan.Id], StringComparison.Ordinal);
        Assert.Contains("reference_alpha", reasons["scored/" + alpha.Id], StringComparison.Ordinal);

        // None of them reached the job: a softmax session's first batch is the good super-batch.
        var open = Sessions.Open("job", Policy.EasyReference);
        open.Loss = LossKind.Softmax;
        using var channel = host.Channel();
        using var call = new CurationClient(channel).StreamBatches(new StreamBatchesRequest { Session = open, MaxBatches = 1 }, SelectionHost.Auth());
        Assert.True(await call.ResponseStream.MoveNext().WaitAsync(Deadline));
        Assert.Equal(good.Id, call.ResponseStream.Current.SuperBatchId);
        AssertInProcess(open, call.ResponseStream.Current, good, null);
    }

    [Fact]
    public async Task A_learner_alpha_the_softmax_source_cannot_take_is_invalid_argument_naming_scores_alpha()
    {
        var options = fixture.Broker.Options(TestNames.Unique("softmax-alpha"));
        await using var host = await SelectionHost.StartAsync(options, kestrel: true);
        await using var broker = new BrokerClient(options);
        var published = await PublishAsync(broker, "job", 1, attached: false);
        using var channel = host.Channel();
        var open = Sessions.Open("job", Policy.Learnability);
        open.Loss = LossKind.Softmax;
        using var call = new CurationClient(channel).Curate(SelectionHost.Auth());
        await call.RequestStream.WriteAsync(new CurateRequest { Open = open });
        CurateResponse? next;
        do
        {
            next = await ProtoClient.NextAsync(call);
        }
        while (next is not null && next.KindCase != CurateResponse.KindOneofCase.Candidate);
        Assert.NotNull(next);
        var scores = Scores(published[0]);
        scores.Alpha = float.MaxValue;
        await call.RequestStream.WriteAsync(new CurateRequest { Scores = scores });
        var error = await ProtoClient.ErrorAsync(call);
        Assert.Equal(StatusCode.InvalidArgument, error.StatusCode);
        Assert.Contains("scores.alpha", error.Status.Detail, StringComparison.Ordinal);
    }

    /// <summary>
    /// Asserts the batch is the in-process selection of its super-batch (ids in order, filtered ids, entropies), computed here
    /// without the shipped losses; returns whether the sigmoid source would have selected otherwise.
    /// </summary>
    private static bool AssertInProcess(SessionOpen open, CuratedBatch batch, ScoredSuperBatch scored, ContrastiveEmbeddings? learner)
    {
        var reference = Reference(scored);
        var settings = BatchSelector.ToCurationSettings(open);
        Assert.Equal(ScoreLoss.Softmax, settings.Loss);
        var step = CurationStep.Select(settings, N, reference, learner is null ? null : new LearnerView(learner), batch.Sequence);
        var ids = batch.Examples.Select(e => e.Id).ToArray();
        Assert.Equal(step.Selected.Select(i => scored.Examples[i].Id), ids);
        Assert.Equal(step.Filtered().Select(i => scored.Examples[i].Id), batch.FilteredIds);
        Assert.Equal(step.Stats.ChunkEntropy, batch.Diagnostics.ChunkEntropy);

        // And the softmax source with the sampler, on their own.
        var policy = settings.Policy;
        var sampler = settings.SamplerFor(N);
        Random Noise() => new(SamplerSeeds.ForBatch(settings.Seed, batch.Sequence));
        var direct = JointSampler.Select(ScoreSources.SoftmaxContrastive(policy, learner, reference), sampler, Noise());
        Assert.Equal(direct.Indices.Select(i => scored.Examples[i].Id), ids);
        var sigmoid = JointSampler.Select(ScoreSources.SigmoidContrastive(policy, learner, reference), sampler, Noise());
        return !sigmoid.Indices.SequenceEqual(direct.Indices);
    }

    private async Task<List<ScoredSuperBatch>> PublishAsync(BrokerClient broker, string job, int count, bool attached)
    {
        var published = new List<ScoredSuperBatch>();
        for (var i = 0; i < count; i++)
        {
            var scored = Make(job, i, attached);
            await ScoredFeeder.PublishAsync(broker.Publisher, broker.Topology, scored);
            published.Add(scored);
        }
        return published;
    }

    /// <summary>A scored super-batch, with the reference's InfoNCE losses attached as Scoring attaches them (Scoring:ReferenceInfoNce) when asked.</summary>
    private ScoredSuperBatch Make(string job, int index, bool attached)
    {
        var scored = fixture.Feeder.Make(job, index, N);
        if (attached)
        {
            scored.ReferenceInfoNce = ReferenceInfoNce.From(InfoNceLosses.Compute(Reference(scored)));
        }
        return scored;
    }

    private static ContrastiveEmbeddings Reference(ScoredSuperBatch scored)
    {
        var (image, text, dim) = scored.ValidatedEmbeddings();
        return new ContrastiveEmbeddings(image, text, N, dim, scored.ReferenceAlpha, scored.ReferenceBeta);
    }

    /// <summary>A learner of its own (random L2-normalised embeddings, α = 10), per super-batch.</summary>
    private static LearnerScores Scores(ScoredSuperBatch scored) => BatchSelectorTests.LearnerScores(scored, seed: 100 + (int)scored.Sequence);

    private static ContrastiveEmbeddings Learner(LearnerScores scores)
    {
        var dim = (int)scores.ImageEmbeddings.Shape[1];
        return new ContrastiveEmbeddings(scores.ImageEmbeddings.ToFloat32("image", N, dim), scores.TextEmbeddings.ToFloat32("text", N, dim), N, dim, scores.Alpha, scores.Beta);
    }
}
