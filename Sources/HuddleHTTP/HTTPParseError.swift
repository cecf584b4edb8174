// Why a message was rejected, the status to answer with, and where in the bytes the problem was found.

public struct HTTPParseError: Error, Equatable, Sendable, CustomStringConvertible {
    /// 400, 414, 431, 501 or 505 for requests; 502 for responses (what the proxy answers the client).
    public var status: Int
    public var reason: Reason
    /// Byte offset from the start of the message (or of the body, for the chunked scanner).
    public var offset: Int

    public init(status: Int, reason: Reason, offset: Int) {
        self.status = status
        self.reason = reason
        self.offset = offset
    }

    /// The status a request with this problem gets; the same reasons found in a response always mean 502.
    @inlinable
    static func request(_ reason: Reason, at offset: Int) -> HTTPParseError {
        HTTPParseError(status: reason.requestStatus, reason: reason, offset: offset)
    }

    @inlinable
    static func response(_ reason: Reason, at offset: Int) -> HTTPParseError {
        HTTPParseError(status: 502, reason: reason, offset: offset)
    }

    public var description: String { "\(status) at byte \(offset): \(reason)" }

    public enum Reason: UInt8, Sendable, CustomStringConvertible {
        case badMethod, badRequestLine, badTarget, targetHasSpace, controlCharInTarget, asteriskWithoutOptions,
             connectWithoutAuthority, badVersion, unsupportedVersion, requestLineTooLong, headTooLarge, tooManyHeaders,
             badHeaderName, whitespaceBeforeColon, missingColon, obsFold, bareCR, bareLF, controlCharInValue,
             badContentLength, contentLengthOverflow, duplicateContentLength, conflictingContentLength,
             contentLengthWithTransferEncoding, transferEncodingInHTTP10, unsupportedTransferCoding,
             chunkedNotFinal, chunkedTwice, emptyTransferEncoding, missingHost, duplicateHost, badHost,
             badStatusLine, badStatusCode,
             badChunkSize, chunkSizeOverflow, chunkLineTooLong, badChunkExtension, missingChunkDataCRLF,
             trailerTooLarge, badTrailer

        /// 414/431/501/505 where RFC 9112 names them, 400 for everything else a client can get wrong. A request whose
        /// final transfer coding is not chunked has no reliable length: RFC 9112 6.3 rule 4 says 400, not 501 (501 is
        /// for an unknown coding under a final chunked, RFC 9112 6.1).
        public var requestStatus: Int {
            switch self {
            case .requestLineTooLong: return 414
            case .headTooLarge, .tooManyHeaders: return 431
            case .unsupportedTransferCoding: return 501
            case .unsupportedVersion: return 505
            default: return 400
            }
        }

        public var description: String {
            switch self {
            case .badMethod: return "method is not a token"
            case .badRequestLine: return "malformed request line"
            case .badTarget: return "malformed request-target"
            case .targetHasSpace: return "request-target contains a space"
            case .controlCharInTarget: return "control character or fragment in the request-target"
            case .asteriskWithoutOptions: return "asterisk-form target with a method other than OPTIONS"
            case .connectWithoutAuthority: return "CONNECT target is not host:port, or host:port without CONNECT"
            case .badVersion: return "malformed HTTP version"
            case .unsupportedVersion: return "HTTP version not supported"
            case .requestLineTooLong: return "request line too long"
            case .headTooLarge: return "header section too large"
            case .tooManyHeaders: return "too many header fields"
            case .badHeaderName: return "header name is not a token"
            case .whitespaceBeforeColon: return "whitespace between header name and colon"
            case .missingColon: return "header line without a colon"
            case .obsFold: return "obsolete line folding"
            case .bareCR: return "CR not followed by LF"
            case .bareLF: return "LF not preceded by CR"
            case .controlCharInValue: return "control character in a header value"
            case .badContentLength: return "Content-Length is not a decimal number"
            case .contentLengthOverflow: return "Content-Length too large"
            case .duplicateContentLength: return "Content-Length appears more than once"
            case .conflictingContentLength: return "Content-Length values differ"
            case .contentLengthWithTransferEncoding: return "both Content-Length and Transfer-Encoding"
            case .transferEncodingInHTTP10: return "Transfer-Encoding in an HTTP/1.0 message"
            case .unsupportedTransferCoding: return "transfer coding other than chunked"
            case .chunkedNotFinal: return "chunked is not the final transfer coding"
            case .chunkedTwice: return "chunked applied more than once"
            case .emptyTransferEncoding: return "empty Transfer-Encoding"
            case .missingHost: return "HTTP/1.1 request without Host"
            case .duplicateHost: return "more than one Host"
            case .badHost: return "malformed Host"
            case .badStatusLine: return "malformed status line"
            case .badStatusCode: return "status code is not three digits from 100"
            case .badChunkSize: return "malformed chunk size"
            case .chunkSizeOverflow: return "chunk size too large"
            case .chunkLineTooLong: return "chunk size line too long"
            case .badChunkExtension: return "malformed chunk extension"
            case .missingChunkDataCRLF: return "chunk data not followed by CRLF"
            case .trailerTooLarge: return "trailer section too large"
            case .badTrailer: return "malformed trailer field"
            }
        }
    }
}
