using JestMesh.Curation;
using JestMesh.Learning;
using JestMesh.Protos.V1;
using JestMesh.TestKit;

namespace JestMesh.Selection.Tests;

/// <summary>BatchSelector on its own: the proto adapter over CurationStep, selecting what the services always selected.</summary>
[Trait("Tier", "Broker")]
[Collection(SelectionCollection.Name)]
public sealed class BatchSelectorTests(SelectionFixture fixture)
{
    private const int N = 64;

    [Theory]
    [InlineData(Policy.Learnability, 4, false)]
    [InlineData(Policy.Learnability, 1, false)]
    [InlineData(Policy.HardLearner, 4, true)]
    [InlineData(Policy.EasyReference, 4, false)]
    [InlineData(Policy.Uniform, 4, false)]
    public void Selects_what_the_sampler_selected_before_and_what_CurationStep_selects(Policy policy, int chunks, bool greedy)
    {
        var scored = fixture.Feeder.Make("job", 3, N);
        var settings = Sessions.Open("job", policy, chunks: chunks, seed: 5);
        settings.Greedy = greedy;
        var scores = LearnerScores(scored, seed: 9);
        foreach (var sequence in new long[] { 1, 2, 17 })
        {
            var batch = BatchSelector.Select(settings, scored, scores, "s", sequence);
            var ids = batch.Examples.Select(e => e.Id).ToArray();

            // The selection as the service computed it before it went through CurationStep.
            var (refImage, refText, dim) = scored.ValidatedEmbeddings();
            var reference = new ContrastiveEmbeddings(refImage, refText, N, dim, scored.ReferenceAlpha, scored.ReferenceBeta);
            var learnerImage = scores.ImageEmbeddings.ToFloat32("x", N, dim);
            var learnerText = scores.TextEmbeddings.ToFloat32("x", N, dim);
            var learner = new ContrastiveEmbeddings(learnerImage, learnerText, N, dim, scores.Alpha, scores.Beta);
            var selectionPolicy = policy.ToSelectionPolicy();
            var source = selectionPolicy == SelectionPolicy.Uniform
                ? ScoreSources.Uniform(N)
                : ScoreSources.SigmoidContrastive(selectionPolicy, Policies.NeedsLearner(selectionPolicy) ? learner : null, reference);
            var before = JointSampler.Select(source, new SamplerOptions { BatchSize = N / 2, Chunks = chunks, Gain = settings.Gain, Greedy = greedy },
                new Random(SamplerSeeds.ForBatch(settings.Seed, sequence)));
            Assert.Equal(before.Indices.Select(i => scored.Examples[i].Id), ids);

            var step = CurationStep.Select(BatchSelector.ToCurationSettings(settings), N, reference,
                Policies.NeedsLearner(selectionPolicy) ? new LearnerView(learner) : null, sequence);
            Assert.Equal(step.Selected.Select(i => scored.Examples[i].Id), ids);
            Assert.Equal(step.Filtered().Select(i => scored.Examples[i].Id), batch.FilteredIds);
            Assert.Equal(step.Stats.ChunkEntropy, batch.Diagnostics.ChunkEntropy);
            Assert.Equal(sequence, batch.Sequence);
            TestData.AssertPartition(batch, scored, N / 2);
        }
    }

    [Fact]
    public void Bad_learner_scores_are_invalid_input_naming_the_field_and_never_an_rpc_status()
    {
        var scored = fixture.Feeder.Make("job", 4, N);
        var settings = Sessions.Open("job", Policy.Learnability);
        var good = LearnerScores(scored, seed: 1);
        var dim = (int)good.ImageEmbeddings.Shape[1];
        var values = good.ImageEmbeddings.ToFloat32("x", N, dim);

        var cases = new List<(LearnerScores? Scores, string Field)>
        {
            (null, "scores"),
            (new LearnerScores(good) { ImageEmbeddings = Protos.V1.Tensor.FromFloat32(values.AsSpan(0, (N - 1) * dim), N - 1, dim) }, "scores.image_embeddings"),
            (new LearnerScores(good) { TextEmbeddings = null }, "scores.text_embeddings"),
            (new LearnerScores(good) { ImageEmbeddings = new Protos.V1.Tensor(good.ImageEmbeddings) { Dtype = DType.Float16 } }, "scores.image_embeddings"),
            (new LearnerScores(good) { Alpha = float.NaN }, "scores.alpha"),
            (new LearnerScores(good) { ImageEmbeddings = Protos.V1.Tensor.FromFloat32(values.Select(v => v * 3).ToArray(), N, dim) }, "scores.image_embeddings"),
        };
        var nan = (float[])values.Clone();
        nan[7] = float.NaN;
        cases.Add((new LearnerScores(good) { ImageEmbeddings = Protos.V1.Tensor.FromFloat32(nan, N, dim) }, "scores.image_embeddings"));
        foreach (var (scores, field) in cases)
        {
            var error = Assert.ThrowsAny<Exception>(() => BatchSelector.Select(settings, scored, scores, "s", 1));
            Assert.IsType<InvalidCurationInputException>(error);
            Assert.Contains(field, error.Message, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void A_super_batch_the_settings_cannot_curate_is_a_precondition_failure()
    {
        var scored = fixture.Feeder.Make("job", 5, N);
        var error = Assert.Throws<CurationPreconditionException>(() => BatchSelector.Select(Sessions.Open("job", Policy.Uniform, chunks: 3), scored, null, "s", 1));
        Assert.Contains("chunks = 3", error.Message, StringComparison.Ordinal);
        Assert.Throws<CurationPreconditionException>(() => BatchSelector.Select(Sessions.Open("job", Policy.Uniform, chunks: 64), scored, null, "s", 1));
    }

    [Fact]
    public void Wire_settings_map_to_the_cores_settings()
    {
        var open = Sessions.Open("job", Policy.HardLearner, filterRatio: 0.75, chunks: 2, seed: 3, gain: 7);
        open.Loss = LossKind.PerExample;
        open.Greedy = true;
        var settings = BatchSelector.ToCurationSettings(open);
        Assert.Equal(new CurationSettings { Policy = SelectionPolicy.HardLearner, FilterRatio = 0.75, Chunks = 2, Seed = 3, Gain = 7, Greedy = true, Loss = ScoreLoss.PerExample }, settings);
        Assert.Equal(ScoreLoss.Sigmoid, BatchSelector.ToCurationSettings(new SessionOpen(open) { Loss = LossKind.Unspecified }).Loss);
        Assert.Equal(ScoreLoss.Softmax, BatchSelector.ToCurationSettings(new SessionOpen(open) { Loss = LossKind.Softmax }).Loss);
        Assert.Throws<InvalidCurationInputException>(() => BatchSelector.ToCurationSettings(new SessionOpen(open) { Loss = (LossKind)99 }));
        Assert.Throws<InvalidCurationInputException>(() => BatchSelector.ToCurationSettings(new SessionOpen(open) { Policy = Policy.Unspecified }));
    }

    /// <summary>
    /// A softmax session reads the scored super-batch's reference_info_nce: given other (valid) values it selects what the source
    /// selects with those values, and without the field what it selects computing them.
    /// </summary>
    [Fact]
    public void A_softmax_selection_uses_the_reference_info_nce_the_super_batch_carries()
    {
        var scored = fixture.Feeder.Make("job", 6, N);
        var settings = Sessions.Open("job", Policy.EasyReference, chunks: 1, seed: 2);
        settings.Loss = LossKind.Softmax;
        settings.Greedy = true;
        var (image, text, dim) = scored.ValidatedEmbeddings();
        var reference = new ContrastiveEmbeddings(image, text, N, dim, scored.ReferenceAlpha, scored.ReferenceBeta);
        var computed = InfoNceLosses.Compute(reference);
        // The reversed losses: a greedy independent selection keeps the other end of the ranking.
        var reversed = new InfoNceLosses([.. computed.ImageToText.ToArray().Reverse()], [.. computed.TextToImage.ToArray().Reverse()]);
        var options = new SamplerOptions { BatchSize = N / 2, Chunks = 1, Gain = settings.Gain, Greedy = true };
        long[] Ids(SelectionResult r) => [.. r.Indices.Select(i => scored.Examples[i].Id)];
        var want = Ids(JointSampler.Select(ScoreSources.SoftmaxContrastive(SelectionPolicy.EasyReference, null, reference), options, new Random(1)));
        var wantReversed = Ids(JointSampler.Select(ScoreSources.SoftmaxContrastive(SelectionPolicy.EasyReference, null, reference, reversed), options, new Random(1)));
        Assert.NotEqual(want, wantReversed);

        Assert.Equal(want, BatchSelector.Select(settings, scored, null, "s", 1).Examples.Select(e => e.Id));
        scored.ReferenceInfoNce = ReferenceInfoNce.From(computed);
        Assert.Equal(want, BatchSelector.Select(settings, scored, null, "s", 1).Examples.Select(e => e.Id));
        scored.ReferenceInfoNce = ReferenceInfoNce.From(reversed);
        Assert.Equal(wantReversed, BatchSelector.Select(settings, scored, null, "s", 1).Examples.Select(e => e.Id));
    }

    /// <summary>Random L2-normalised learner embeddings of the reference's width.</summary>
    internal static LearnerScores LearnerScores(ScoredSuperBatch scored, int seed)
    {
        var dim = (int)scored.ReferenceImageEmbeddings.Shape[1];
        var random = new Random(seed);
        float[] Rows()
        {
            var values = new float[N * dim];
            for (var r = 0; r < N; r++)
            {
                double norm = 0;
                for (var c = 0; c < dim; c++)
                {
                    var v = (float)((random.NextDouble() * 2) - 1);
                    values[(r * dim) + c] = v;
                    norm += v * v;
                }
                for (var c = 0; c < dim; c++)
                {
                    values[(r * dim) + c] /= (float)Math.Sqrt(norm);
                }
            }
            return values;
        }
        return new LearnerScores
        {
            SuperBatchId = scored.Id,
            ImageEmbeddings = Protos.V1.Tensor.FromFloat32(Rows(), N, dim),
            TextEmbeddings = Protos.V1.Tensor.FromFloat32(Rows(), N, dim),
            Alpha = 10,
            Beta = -10,
        };
    }
}
