using System.Security.Cryptography;
using System.Text;
using Grpc.Core;
using Microsoft.Extensions.Options;

namespace JestMesh.Selection;

/// <summary>Requires "authorization: Bearer KEY" on every RPC except gRPC health; otherwise UNAUTHENTICATED.</summary>
public sealed class ApiKeyInterceptor : CallGate
{
    private readonly byte[] _expected;

    public ApiKeyInterceptor(IOptions<SelectionOptions> options)
    {
        ArgumentNullException.ThrowIfNull(options);
        _expected = Encoding.UTF8.GetBytes(options.Value.ApiKey);
    }

    /// <summary>Longest credential compared at all; any longer one is wrong without reading it.</summary>
    internal const int MaxCredentialChars = 4096;

    protected override void Check(ServerCallContext context)
    {
        var header = context.RequestHeaders.GetValue("authorization");
        if (header is null)
        {
            throw Unauthenticated("missing 'authorization: Bearer <api key>' metadata.");
        }
        var space = header.IndexOf(' ', StringComparison.Ordinal);
        var scheme = space < 0 ? header : header[..space];
        if (!scheme.Equals("Bearer", StringComparison.OrdinalIgnoreCase))
        {
            throw Unauthenticated($"the 'authorization' scheme is {Protos.ClientText.Quote(scheme)}; this service takes 'Bearer <api key>'.");
        }
        var presented = header[(space + 1)..].Trim();
        if (presented.Length > MaxCredentialChars)
        {
            throw Unauthenticated($"the api key in 'authorization' is {presented.Length} characters, longer than any key of this service.");
        }
        // Constant-time comparison: the time to reject must not reveal how much of the key matched.
        if (!CryptographicOperations.FixedTimeEquals(Encoding.UTF8.GetBytes(presented), _expected))
        {
            throw Unauthenticated("the api key in 'authorization' is wrong.");
        }
    }

    private static RpcException Unauthenticated(string message) => new(new Status(StatusCode.Unauthenticated, message));
}
