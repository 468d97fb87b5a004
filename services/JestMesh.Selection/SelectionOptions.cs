using System.ComponentModel.DataAnnotations;

namespace JestMesh.Selection;

/// <summary>Settings of the Selection service (configuration section "Selection").</summary>
public sealed class SelectionOptions : IValidatableObject
{
    public const string SectionName = "Selection";

    /// <summary>The credential every RPC except health must present as "authorization: Bearer KEY" (from a Secret in k8s).</summary>
    [Required]
    [MinLength(16)]
    public string ApiKey { get; set; } = "";

    /// <summary>Largest gRPC message the service accepts (learner scores of a super-batch), bytes.</summary>
    [Range(64 * 1024, 1024 * 1024 * 1024)]
    public int MaxReceiveMessageBytes { get; set; } = 64 * 1024 * 1024;

    /// <summary>Largest gRPC message the service sends (a candidate super-batch), bytes.</summary>
    [Range(64 * 1024, 1024 * 1024 * 1024)]
    public int MaxSendMessageBytes { get; set; } = 64 * 1024 * 1024;

    /// <summary>HTTP/2 keepalive: a ping after this much idle time on a connection.</summary>
    [Range(typeof(TimeSpan), "00:00:01", "01:00:00")]
    public TimeSpan KeepAlivePingDelay { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>HTTP/2 keepalive: the connection is closed when a ping is not answered within this.</summary>
    [Range(typeof(TimeSpan), "00:00:01", "01:00:00")]
    public TimeSpan KeepAlivePingTimeout { get; set; } = TimeSpan.FromSeconds(20);

    /// <summary>Scored super-batches one job's consumer holds unacked (shared by that job's sessions).</summary>
    [Range(1, 10_000)]
    public int JobPrefetch { get; set; } = 16;

    /// <summary>Candidates a Curate session keeps in flight ahead of the learner (2 = the next one is always there).</summary>
    [Range(1, 16)]
    public int CandidatesAhead { get; set; } = 2;

    /// <summary>Curated batches a learner-free Curate session sends ahead of the client's acks.</summary>
    [Range(1, 64)]
    public int BatchesAhead { get; set; } = 2;

    /// <summary>Name of the durable batch log (a RabbitMQ stream); default "{Messaging:QueuePrefix}.selection.log".</summary>
    [RegularExpression("^[A-Za-z0-9_.-]{0,200}$")]
    public string LogStream { get; set; } = "";

    /// <summary>Retention of the batch log (x-max-age); sessions older than this cannot be resumed.</summary>
    [RegularExpression("^[0-9]+[YMDhms]$")]
    public string LogMaxAge { get; set; } = "7D";

    public IEnumerable<ValidationResult> Validate(ValidationContext validationContext)
    {
        if (KeepAlivePingTimeout > KeepAlivePingDelay * 10)
        {
            yield return new ValidationResult("must not exceed ten times KeepAlivePingDelay.", [nameof(KeepAlivePingTimeout)]);
        }
    }
}
