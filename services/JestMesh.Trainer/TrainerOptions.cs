using System.ComponentModel.DataAnnotations;
using JestMesh.Client;
using JestMesh.Learning;
using JestMesh.Protos.V1;
using JestMesh.Tls;

namespace JestMesh.Trainer;

/// <summary>Settings of the trainer (configuration section "Trainer").</summary>
public sealed class TrainerOptions : IValidatableObject
{
    public const string SectionName = "Trainer";

    /// <summary>
    /// Address of the Selection service, e.g. http://selection:8080 (https:// for TLS), or the
    /// replicas' addresses separated by commas (the trainer goes round them when one refuses or dies).
    /// </summary>
    [Required]
    public string SelectionAddress { get; set; } = "";

    /// <summary>
    /// TLS to an https:// Selection: CaFile, the CA Selection's certificate must chain to (else the
    /// system CAs); CertificateFile and KeyFile, the client certificate presented to Selection.
    /// </summary>
    public TlsOptions Tls { get; set; } = new();

    /// <summary>API key for the Selection service (from a Secret in k8s).</summary>
    [Required]
    [MinLength(16)]
    public string ApiKey { get; set; } = "";

    /// <summary>The job whose super-batches the trainer curates.</summary>
    [Required]
    [RegularExpression("^[A-Za-z0-9_.-]{1,100}$")]
    public string Job { get; set; } = "";

    public Policy Policy { get; set; } = Policy.Learnability;

    [Range(0.0, 0.999)]
    public double FilterRatio { get; set; } = 0.8;

    [Range(1, 4096)]
    public int Chunks { get; set; } = 16;

    /// <summary>Sampling gain; 1 won the {1, 10, 100} sweep on this task (the in-process default too).</summary>
    [Range(0.0, 1e6)]
    public double Gain { get; set; } = 1;

    public bool Greedy { get; set; }

    /// <summary>Seed of the learner's initialisation and of the session's sampler.</summary>
    public ulong Seed { get; set; }

    /// <summary>Learner steps to train in all (one curated batch each).</summary>
    [Range(1, 10_000_000)]
    public int Steps { get; set; } = 1500;

    [Range(1e-7, 1.0)]
    public double LearningRate { get; set; } = 1e-3;

    /// <summary>Warm-up steps of the learning-rate schedule; unset = the learning core's rule, min(100, max(1, Steps/10)).</summary>
    [Range(0, 1_000_000)]
    public int? WarmupSteps { get; set; }

    /// <summary>Evaluate every K steps (0 = never).</summary>
    [Range(0, 1_000_000)]
    public int EvalEvery { get; set; } = 100;

    /// <summary>Test pairs used per evaluation (0 = all 10,000).</summary>
    [Range(0, 10_000)]
    public int EvalLimit { get; set; }

    /// <summary>Seed of the data options (the evaluation pairs).</summary>
    public int DataSeed { get; set; }

    /// <summary>Write a checkpoint every this many steps (and at the end).</summary>
    [Range(1, 1_000_000)]
    public int CheckpointEvery { get; set; } = 50;

    [Required]
    public string CheckpointDirectory { get; set; } = "";

    /// <summary>gRPC message limits of the client (a candidate super-batch is the largest message).</summary>
    [Range(64 * 1024, 1024 * 1024 * 1024)]
    public int MaxMessageBytes { get; set; } = 64 * 1024 * 1024;

    /// <summary>
    /// Candidates scored before the current batch is trained (0 or 1). 0 is exact JEST: each
    /// candidate is scored by the learner of the step that trains on its batch, and a run equals
    /// `train --inproc`. 1 scores the next candidate one step early (learner scores one step stale,
    /// reported as learner_staleness), so Selection's turnaround overlaps training and the data stall
    /// nearly vanishes. Needs Selection:CandidatesAhead ≥ 2.
    /// </summary>
    [Range(0, 1)]
    public int ScoreAhead { get; set; }

    /// <summary>Image side the learner scores candidates at: 28 exact, 14 or 7 cheap (Flexi-JEST; training stays at 28).</summary>
    [Range(7, 28)]
    public int ScoreResolution { get; set; } = 28;

    /// <summary>HTTP/2 receive window of the Curate stream: at least one candidate super-batch.</summary>
    [Range(65_535, 64 * 1024 * 1024)]
    public int StreamWindowBytes { get; set; } = 4 * 1024 * 1024;

    [Range(typeof(TimeSpan), "00:00:01", "01:00:00")]
    public TimeSpan KeepAlivePingDelay { get; set; } = TimeSpan.FromSeconds(30);

    [Range(typeof(TimeSpan), "00:00:01", "01:00:00")]
    public TimeSpan KeepAlivePingTimeout { get; set; } = TimeSpan.FromSeconds(20);

    /// <summary>First reconnection delay; it grows exponentially (with jitter) up to ReconnectMaxDelay.</summary>
    [Range(typeof(TimeSpan), "00:00:00.010", "00:10:00")]
    public TimeSpan ReconnectDelay { get; set; } = TimeSpan.FromMilliseconds(500);

    [Range(typeof(TimeSpan), "00:00:00.010", "01:00:00")]
    public TimeSpan ReconnectMaxDelay { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>The learning core's settings of this trainer's learner.</summary>
    public LearnerOptions ToLearnerOptions() => new()
    {
        Steps = Steps,
        Seed = Seed,
        LearningRate = LearningRate,
        WarmupSteps = WarmupSteps,
        EvalEvery = EvalEvery,
        ScoreResolution = ScoreResolution,
    };

    /// <summary>The client library's settings of this trainer's Curate session.</summary>
    public CurateSettings ToCurateSettings() => new()
    {
        Job = Job,
        ApiKey = ApiKey,
        Policy = Policy,
        FilterRatio = FilterRatio,
        Chunks = Chunks,
        Gain = Gain,
        Seed = Seed,
        Greedy = Greedy,
        Loss = LossKind.Sigmoid,
        ScoreAhead = ScoreAhead,
        ReconnectDelay = ReconnectDelay,
        ReconnectMaxDelay = ReconnectMaxDelay,
    };

    public IEnumerable<ValidationResult> Validate(ValidationContext validationContext)
    {
        if (!CurateChannel.TryParseAddresses(SelectionAddress, out var addresses, out var addressProblem))
        {
            yield return new ValidationResult(addressProblem, [nameof(SelectionAddress)]);
        }
        else if ((Tls.HasCa || Tls.HasCertificate) && addresses[0].Scheme == Uri.UriSchemeHttp)
        {
            yield return new ValidationResult($"'{SelectionAddress}' is http:// (no TLS) but Trainer:Tls is set: use https://, or drop the Tls settings.", [nameof(SelectionAddress)]);
        }
        foreach (var problem in Tls.Validate())
        {
            yield return problem;
        }
        if (ScoreResolution is not (7 or 14 or 28))
        {
            yield return new ValidationResult($"{ScoreResolution} must be 7, 14 or 28 (a divisor of the 28-pixel side).", [nameof(ScoreResolution)]);
        }
        if (Policy == Policy.Unspecified || !Enum.IsDefined(Policy))
        {
            yield return new ValidationResult("must be Learnability, HardLearner, EasyReference or Uniform.", [nameof(Policy)]);
        }
        if (ReconnectMaxDelay < ReconnectDelay)
        {
            yield return new ValidationResult("must be at least ReconnectDelay.", [nameof(ReconnectMaxDelay)]);
        }
    }
}
