// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IConsentRegistry} from "./IConsentRegistry.sol";
import {IStudyRegistry} from "./IStudyRegistry.sol";

/// @title IAccessLog
/// @notice The audit trail of every release and every refusal of imaging studies, written by the
/// gateways of the sites that hold them. Patients find their records by their indexed address.
/// @dev Gateways hold `GATEWAY_ROLE`; emergency clinicians hold `EMERGENCY_ROLE`. Both are granted
/// by the admin (`DEFAULT_ADMIN_ROLE`). The log is events only: it keeps no per-record storage.
///
/// Two modes:
/// - One record per transaction: `recordAccess` asks ConsentRegistry on chain and emits
///   `AccessGranted` or `AccessDenied`; `recordBreakGlass` emits `BreakGlassAccess`.
/// - Batched: the gateway keeps records in its outbox and anchors the Merkle root of many of them
///   with `anchorBatch`. Each record stays provable against the anchored root:
///
///   leaf = keccak256(bytes.concat(keccak256(abi.encode(
///            studyKey, patient, accessor, purpose, permitted, breakGlass, requestId, gateway, timestamp))))
///   with types (bytes32, address, address, uint8, bool, bool, bytes32, address, uint48), i.e.
///   `abi.encode(AccessRecord)`, nine 32-byte words; then the same sorted-pair StandardMerkleTree
///   as content roots (`node = keccak256(min(a, b) ‖ max(a, b))`, a one-record batch's root is its
///   leaf). `imaging_consent.merkle.MerkleTree` builds it. `timestamp` is the gateway's decision
///   time (unix seconds); a break-glass record has `purpose = ETREAT (1)`, `permitted = true`,
///   `breakGlass = true`. `recordLeaf` computes a leaf and `verifyRecord` checks a proof.
///
/// Batch ids are not stored: a mapping would cost a new slot (22,100 gas) on every anchor. A reused
/// `batchId`, or a root anchored twice, is visible in the `BatchAnchored` events and is flagged by
/// the off-chain indexer. A root counts as anchored by `gateway` once its `BatchAnchored` event is
/// in the chain; `verifyRecord` checks only the proof, not the anchoring.
interface IAccessLog {
    /// @notice One access record, as hashed into a batch leaf (see the contract notes).
    /// @param studyKey Opaque key of the study.
    /// @param patient The study's patient.
    /// @param accessor The account that asked for the study.
    /// @param purpose PurposeOfUse bit index (as in ConsentRegistry).
    /// @param permitted True if the study was released, false if refused.
    /// @param breakGlass True for an emergency access without consent.
    /// @param requestId The gateway's unique id for the request.
    /// @param gateway The gateway that decided, and that anchors the batch.
    /// @param timestamp Unix time of the decision.
    struct AccessRecord {
        bytes32 studyKey;
        address patient;
        address accessor;
        uint8 purpose;
        bool permitted;
        bool breakGlass;
        bytes32 requestId;
        address gateway;
        uint48 timestamp;
    }

    /// @notice Emitted when a gateway records an access that consent permits.
    /// @dev Whether the grant allowed identified data is not repeated here: it follows from the
    /// ConsentRegistry events up to this block, and leaving it out keeps a record under 40,000 gas.
    event AccessGranted(
        bytes32 indexed studyKey,
        address indexed patient,
        address indexed accessor,
        uint8 purpose,
        bytes32 requestId,
        address gateway
    );

    /// @notice Emitted when a gateway records a refused access (no consent for that purpose now).
    event AccessDenied(
        bytes32 indexed studyKey,
        address indexed patient,
        address indexed accessor,
        uint8 purpose,
        bytes32 requestId,
        address gateway
    );

    /// @notice Emitted when an emergency clinician accesses a study without consent (break-glass).
    /// Always visible to the patient, who is indexed.
    /// @param reasonHash Hash of the documented reason, kept off chain (never free text on chain).
    event BreakGlassAccess(
        bytes32 indexed studyKey,
        address indexed patient,
        address indexed accessor,
        bytes32 requestId,
        bytes32 reasonHash,
        address gateway
    );

    /// @notice Emitted when a gateway anchors the Merkle root of a batch of access records.
    event BatchAnchored(bytes32 indexed root, uint32 count, bytes32 indexed batchId, address indexed gateway);

    /// @notice Thrown when a study key is not registered in StudyRegistry.
    error AccessLogUnknownStudy(bytes32 studyKey);

    /// @notice Thrown when a break-glass accessor does not hold `EMERGENCY_ROLE`.
    error AccessLogNotEmergency(address accessor);

    /// @notice Thrown when an access names the zero address as accessor.
    error AccessLogZeroAccessor();

    /// @notice Thrown when a break-glass access comes without a reason hash.
    error AccessLogZeroReason(bytes32 requestId);

    /// @notice Thrown when a batch is anchored with a zero root.
    error AccessLogZeroRoot(bytes32 batchId);

    /// @notice Thrown when a batch is anchored with no records.
    error AccessLogEmptyBatch(bytes32 batchId);

    /// @notice Thrown when a constructor argument is the zero address.
    error AccessLogZeroAddress();

    /// @notice Records one access to a study, permitted or refused, as consent says at this block.
    /// @dev Caller must hold `GATEWAY_ROLE`. Looks the patient up in StudyRegistry and asks
    /// `ConsentRegistry.isPermitted`. Never reverts on a refusal, which is recorded too.
    /// @param studyKey Opaque key of a registered study.
    /// @param accessor The account asking for the study.
    /// @param purpose PurposeOfUse bit index.
    /// @param requestId The gateway's unique id for the request.
    /// @return permitted Whether consent permits the access now.
    function recordAccess(bytes32 studyKey, address accessor, uint8 purpose, bytes32 requestId)
        external
        returns (bool permitted);

    /// @notice Records an emergency access to a study without consent.
    /// @dev Caller must hold `GATEWAY_ROLE`, and `accessor` must hold `EMERGENCY_ROLE`.
    /// @param reasonHash Hash of the documented reason (kept off chain); must not be zero.
    function recordBreakGlass(bytes32 studyKey, address accessor, bytes32 requestId, bytes32 reasonHash) external;

    /// @notice Anchors the Merkle root of `count` access records, identified by `batchId`.
    /// @dev Caller must hold `GATEWAY_ROLE`. Nothing is stored; see the contract notes on batch ids.
    function anchorBatch(bytes32 root, uint32 count, bytes32 batchId) external;

    /// @notice What `recordAccess` would decide now, plus what a gateway needs to release: one call.
    /// @dev A view for gateways: the study's patient and current content root, and
    /// `ConsentRegistry.isPermitted`. Reverts with `StudyRegistryUnknownStudy` for an unknown key.
    function checkAccess(bytes32 studyKey, address accessor, uint8 purpose)
        external
        view
        returns (address patient, bytes32 contentRoot, bool permitted, bool identified);

    /// @notice The ConsentRegistry asked on every `recordAccess`.
    function consentRegistry() external view returns (IConsentRegistry);

    /// @notice The StudyRegistry that maps study keys to patients.
    function studyRegistry() external view returns (IStudyRegistry);

    /// @notice The batch leaf of `record` (the encoding in the contract notes).
    function recordLeaf(AccessRecord calldata record) external pure returns (bytes32);

    /// @notice Whether `proof` proves `leaf` against `root` (OpenZeppelin `MerkleProof.verify`).
    /// @dev Checks the proof only. That `root` was anchored is shown by its `BatchAnchored` event.
    function verifyRecord(bytes32 root, bytes32 leaf, bytes32[] calldata proof) external pure returns (bool);
}
