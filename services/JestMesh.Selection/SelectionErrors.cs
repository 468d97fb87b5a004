using Grpc.Core;
using Grpc.Core.Interceptors;
using JestMesh.Learning;

namespace JestMesh.Selection;

/// <summary>What the service refuses beyond the curation core's errors; <see cref="RpcErrors"/> maps each kind to a status.</summary>
public sealed class SelectionException : Exception
{
    public SelectionException(StatusCode code, string message, Exception? inner = null)
        : base(message, inner)
    {
        Code = code;
    }

    public StatusCode Code { get; }

    /// <summary>The client should resume over a new connection: another replica may serve what this one refused.</summary>
    public bool TryAnotherReplica { get; private init; }

    /// <summary>The job has no queue (no scored super-batch of it ever arrived) or the session id is unknown.</summary>
    public static SelectionException NotFound(string message) => new(StatusCode.NotFound, message);

    /// <summary>A configured bound (sessions per job, jobs) is reached.</summary>
    public static SelectionException Exhausted(string message) => new(StatusCode.ResourceExhausted, message);

    /// <summary>The batch log refused a record: nothing was recorded, the client may retry.</summary>
    public static SelectionException Unavailable(string message, Exception? inner = null) => new(StatusCode.Unavailable, message, inner);

    /// <summary>Another replica holds the job: UNAVAILABLE, and the connection is closed gracefully (GOAWAY) so the client's retry may reach another replica.</summary>
    public static SelectionException HeldElsewhere(string message, Exception? inner = null) => new(StatusCode.Unavailable, message, inner) { TryAnotherReplica = true };

    public static SelectionException Unauthenticated(string message) => new(StatusCode.Unauthenticated, message);
}

/// <summary>The one place where the service's errors become gRPC statuses.</summary>
public static class RpcErrors
{
    /// <summary>
    /// The status of a failure: the core's <see cref="InvalidCurationInputException"/> is
    /// INVALID_ARGUMENT, <see cref="CurationPreconditionException"/> FAILED_PRECONDITION, a broken
    /// request contract (<see cref="InvalidDataException"/> from the protos' checks) INVALID_ARGUMENT,
    /// <see cref="SelectionException"/> its own code; null for anything else (a bug: INTERNAL, logged).
    /// </summary>
    public static Status? ToStatus(Exception exception) => exception switch
    {
        RpcException rpc => rpc.Status,
        SelectionException selection => new Status(selection.Code, selection.Message),
        BatchLogReadInterruptedException interrupted => new Status(StatusCode.Unavailable, $"{interrupted.Message}; retry."),
        InvalidCurationInputException invalid => new Status(StatusCode.InvalidArgument, invalid.Message),
        CurationPreconditionException precondition => new Status(StatusCode.FailedPrecondition, precondition.Message),
        InvalidDataException contract => new Status(StatusCode.InvalidArgument, contract.Message),
        _ => null,
    };

    /// <summary>The status of <paramref name="exception"/> as an RpcException (INTERNAL for unexpected ones).</summary>
    public static RpcException ToRpcException(Exception exception)
    {
        ArgumentNullException.ThrowIfNull(exception);
        return exception as RpcException ?? new RpcException(ToStatus(exception) ?? new Status(StatusCode.Internal, "internal error; see the service log."));
    }

    /// <summary>Turns a domain error into an INVALID_ARGUMENT-class error of the core (for contract checks that ran in the protos).</summary>
    public static InvalidCurationInputException Invalid(InvalidDataException exception)
    {
        ArgumentNullException.ThrowIfNull(exception);
        return new InvalidCurationInputException(exception.Message, exception);
    }
}

/// <summary>
/// Maps every RPC's failures through <see cref="RpcErrors"/>. Expected refusals are logged in one
/// line at Information (no stack trace); a client that went away is logged at Debug and ends the
/// call as CANCELLED; a stream the service ended (takeover, shutdown) is UNAVAILABLE; anything else
/// is logged as an error and becomes INTERNAL.
/// </summary>
public sealed partial class ErrorMappingInterceptor(ILogger<ErrorMappingInterceptor> logger) : Interceptor
{
    public override async Task<TResponse> UnaryServerHandler<TRequest, TResponse>(TRequest request, ServerCallContext context, UnaryServerMethod<TRequest, TResponse> continuation)
    {
        ArgumentNullException.ThrowIfNull(continuation);
        try
        {
            return await continuation(request, context);
        }
        catch (Exception ex) when (Handle(ex, context))
        {
            throw new RpcException(context.Status);
        }
    }

    public override async Task<TResponse> ClientStreamingServerHandler<TRequest, TResponse>(IAsyncStreamReader<TRequest> requestStream, ServerCallContext context, ClientStreamingServerMethod<TRequest, TResponse> continuation)
    {
        ArgumentNullException.ThrowIfNull(continuation);
        try
        {
            return await continuation(requestStream, context);
        }
        catch (Exception ex) when (Handle(ex, context))
        {
            throw new RpcException(context.Status);
        }
    }

    public override async Task ServerStreamingServerHandler<TRequest, TResponse>(TRequest request, IServerStreamWriter<TResponse> responseStream, ServerCallContext context, ServerStreamingServerMethod<TRequest, TResponse> continuation)
    {
        ArgumentNullException.ThrowIfNull(continuation);
        try
        {
            await continuation(request, responseStream, context);
        }
        catch (Exception ex) when (Handle(ex, context))
        {
            // The status set on the context goes out in the trailers.
        }
    }

    public override async Task DuplexStreamingServerHandler<TRequest, TResponse>(IAsyncStreamReader<TRequest> requestStream, IServerStreamWriter<TResponse> responseStream, ServerCallContext context, DuplexStreamingServerMethod<TRequest, TResponse> continuation)
    {
        ArgumentNullException.ThrowIfNull(continuation);
        try
        {
            await continuation(requestStream, responseStream, context);
        }
        catch (Exception ex) when (Handle(ex, context))
        {
            // The status set on the context goes out in the trailers.
        }
    }

    /// <summary>Sets the call's status for a failure it knows; false (rethrow) for an unexpected one.</summary>
    private bool Handle(Exception exception, ServerCallContext context)
    {
        if (exception is OperationCanceledException or IOException && context.CancellationToken.IsCancellationRequested)
        {
            // The client cancelled or went away (or a newer stream took the session over): nothing to report.
            LogCancelled(logger, context.Method);
            context.Status = new Status(StatusCode.Cancelled, "the call was cancelled.");
            return true;
        }
        if (exception is OperationCanceledException)
        {
            // The service ended the stream itself: a newer stream took the session over, or the
            // service is stopping. The client resumes (UNAVAILABLE is retried by every client).
            var ended = new Status(StatusCode.Unavailable, "the stream was ended by the service (a newer stream took the session over, or the service is stopping); resume the session.");
            LogRefused(logger, context.Method, ended.StatusCode, ended.Detail);
            context.Status = ended;
            return true;
        }
        if (RpcErrors.ToStatus(exception) is not { } status)
        {
            LogFailed(logger, context.Method, exception);
            context.Status = new Status(StatusCode.Internal, "internal error; see the service log.");
            return true;
        }
        LogRefused(logger, context.Method, status.StatusCode, status.Detail);
        context.Status = status;
        if (exception is SelectionException { TryAnotherReplica: true })
        {
            // A client pinned to this replica by its HTTP/2 connection would retry here for ever: ask it
            // to open a new one (GOAWAY once its calls end), which a load balancer may send elsewhere.
            context.GetHttpContext().Features.Get<Microsoft.AspNetCore.Connections.Features.IConnectionLifetimeNotificationFeature>()?.RequestClose();
        }
        return true;
    }

    [LoggerMessage(Level = LogLevel.Debug, Message = "{Method}: cancelled by the client")]
    private static partial void LogCancelled(ILogger logger, string method);

    [LoggerMessage(Level = LogLevel.Information, Message = "{Method}: {Status}: {Detail}")]
    private static partial void LogRefused(ILogger logger, string method, StatusCode status, string detail);

    [LoggerMessage(Level = LogLevel.Error, Message = "{Method} failed")]
    private static partial void LogFailed(ILogger logger, string method, Exception exception);
}
