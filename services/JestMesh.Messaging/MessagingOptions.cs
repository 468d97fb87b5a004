using System.ComponentModel.DataAnnotations;
using JestMesh.Tls;

namespace JestMesh.Messaging;

/// <summary>Broker connection, topology and flow-control settings (configuration section "Messaging").</summary>
public sealed class MessagingOptions : IValidatableObject
{
    public const string SectionName = "Messaging";

    /// <summary>
    /// AMQP URI of the broker, e.g. amqp://user:pass@host:5672/ (amqps://...:5671/ for TLS), or of every
    /// node of a cluster, separated by commas (see <see cref="BrokerAddress"/>). Credentials come from a
    /// Secret in k8s.
    /// </summary>
    [Required]
    public string Uri { get; set; } = "";

    /// <summary>Queue and exchange names are "{QueuePrefix}.superbatches" etc.; tests use a unique prefix.</summary>
    [Required]
    [RegularExpression("^[A-Za-z0-9_.-]{1,200}$")]
    public string QueuePrefix { get; set; } = "jestmesh";

    /// <summary>Unacked deliveries the broker pushes ahead to one consumer.</summary>
    [Range(1, 65535)]
    public int Prefetch { get; set; } = 4;

    /// <summary>
    /// Deliveries one consumer handles at once. Above 1, a handler waiting for its downstream
    /// confirm does not hold back the next delivery (acks stay per message). At most Prefetch.
    /// </summary>
    [Range(1, 64)]
    public int ConsumerConcurrency { get; set; } = 1;

    /// <summary>Bound on unconfirmed publishes per channel; a publisher beyond it waits.</summary>
    [Range(1, 65536)]
    public int MaxOutstandingConfirms { get; set; } = 64;

    /// <summary>x-max-length of the input queue (super-batches); beyond it publishes are rejected (backpressure).</summary>
    [Range(1, 10_000_000)]
    public int InputQueueMaxLength { get; set; } = 32;

    /// <summary>x-delivery-limit: deliveries after which the broker dead-letters a message that keeps failing.</summary>
    [Range(1, 1000)]
    public int DeliveryLimit { get; set; } = 5;

    /// <summary>Message ids a consumer remembers to drop duplicates (bounded, most recent kept).</summary>
    [Range(1, 100_000_000)]
    public int DeduplicationCapacity { get; set; } = 1_000_000;

    /// <summary>Pause between reconnection attempts and between retries of a publish that met a dead channel.</summary>
    [Range(typeof(TimeSpan), "00:00:00.050", "00:05:00")]
    public TimeSpan RecoveryInterval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>
    /// Longest wait for the broker's confirm of one publish. Past it the channel is dropped and the
    /// message published again, with the same id, on a new one: a confirm lost with a dead node (or
    /// never completed by the client after a recovery) must not stall its publisher for ever.
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:01", "00:10:00")]
    public TimeSpan ConfirmTimeout { get; set; } = TimeSpan.FromSeconds(15);

    /// <summary>Pause before a message whose handler failed transiently is returned to the queue.</summary>
    [Range(typeof(TimeSpan), "00:00:00", "00:05:00")]
    public TimeSpan RetryDelay { get; set; } = TimeSpan.FromMilliseconds(200);

    /// <summary>Largest message body accepted from the broker, bytes.</summary>
    [Range(1024, 512 * 1024 * 1024)]
    public int MaxMessageBytes { get; set; } = 128 * 1024 * 1024;

    /// <summary>
    /// TLS of an amqps:// broker: CaFile, the CA the broker's certificate must chain to (else the
    /// system CAs); CertificateFile and KeyFile, a client certificate presented to the broker.
    /// </summary>
    public TlsOptions Tls { get; set; } = new();

    /// <summary>Shown in the broker's connection list ("{ClientName}-publish", "{ClientName}-consume").</summary>
    public string ClientName { get; set; } = "jestmesh";

    public IEnumerable<ValidationResult> Validate(ValidationContext validationContext)
    {
        if (!string.IsNullOrEmpty(Uri) && !BrokerAddress.TryParse(Uri, out _, out var error))
        {
            yield return new ValidationResult(error, [nameof(Uri)]);
        }
        else if ((Tls.HasCa || Tls.HasCertificate) && !string.IsNullOrEmpty(Uri) && BrokerAddress.Parse(Uri).Primary.Scheme == "amqp")
        {
            yield return new ValidationResult("is amqp:// (no TLS) but Messaging:Tls is set: use amqps://host:5671/, or drop the Tls settings.", [nameof(Uri)]);
        }
        foreach (var problem in Tls.Validate())
        {
            yield return problem;
        }
        if (ConsumerConcurrency > Prefetch)
        {
            yield return new ValidationResult($"must not exceed Prefetch ({Prefetch}): deliveries beyond the prefetch never arrive.", [nameof(ConsumerConcurrency)]);
        }
    }
}
