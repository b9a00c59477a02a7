// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";

import {IAccessLog} from "../interfaces/IAccessLog.sol";
import {IConsentRegistry} from "../interfaces/IConsentRegistry.sol";
import {IStudyRegistry} from "../interfaces/IStudyRegistry.sol";

/// @title AccessLog
/// @notice Gateways record every release and every refusal of imaging studies here, one by one or
/// as anchored batches, and emergency (break-glass) accesses always one by one.
/// @dev Events only, no per-record storage. `recordAccess` reads one slot of StudyRegistry
/// (`patientOf`) and the grant slots of ConsentRegistry (`isPermitted`), nothing else.
contract AccessLog is IAccessLog, AccessControl {
    /// @notice Role of site gateways, which record accesses and anchor batches.
    bytes32 public constant GATEWAY_ROLE = keccak256("GATEWAY_ROLE");

    /// @notice Role of emergency clinicians, who may break glass.
    bytes32 public constant EMERGENCY_ROLE = keccak256("EMERGENCY_ROLE");

    /// @notice PurposeOfUse bit of a break-glass access: ETREAT, emergency treatment.
    uint8 public constant BREAK_GLASS_PURPOSE = 1;

    IConsentRegistry private immutable _consentRegistry;
    IStudyRegistry private immutable _studyRegistry;

    /// @notice Deploys the log, wired for good to one ConsentRegistry and one StudyRegistry.
    /// @param consentRegistry_ The ConsentRegistry asked on every access.
    /// @param studyRegistry_ The StudyRegistry that maps study keys to patients.
    /// @param admin Receives `DEFAULT_ADMIN_ROLE`, and so may grant and revoke the other roles.
    constructor(IConsentRegistry consentRegistry_, IStudyRegistry studyRegistry_, address admin) {
        if (address(consentRegistry_) == address(0) || address(studyRegistry_) == address(0) || admin == address(0))
        {
            revert AccessLogZeroAddress();
        }
        _consentRegistry = consentRegistry_;
        _studyRegistry = studyRegistry_;
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
    }

    /// @inheritdoc IAccessLog
    function recordAccess(bytes32 studyKey, address accessor, uint8 purpose, bytes32 requestId)
        external
        onlyRole(GATEWAY_ROLE)
        returns (bool permitted)
    {
        if (accessor == address(0)) revert AccessLogZeroAccessor();
        address patient = _patientOf(studyKey);
        permitted = _isPermitted(patient, accessor, studyKey, purpose);
        if (permitted) {
            emit AccessGranted(studyKey, patient, accessor, purpose, requestId, msg.sender);
        } else {
            emit AccessDenied(studyKey, patient, accessor, purpose, requestId, msg.sender);
        }
    }

    /// @inheritdoc IAccessLog
    function recordBreakGlass(bytes32 studyKey, address accessor, bytes32 requestId, bytes32 reasonHash)
        external
        onlyRole(GATEWAY_ROLE)
    {
        if (!hasRole(EMERGENCY_ROLE, accessor)) revert AccessLogNotEmergency(accessor);
        if (reasonHash == bytes32(0)) revert AccessLogZeroReason(requestId);
        address patient = _patientOf(studyKey);
        emit BreakGlassAccess(studyKey, patient, accessor, requestId, reasonHash, msg.sender);
    }

    /// @inheritdoc IAccessLog
    function anchorBatch(bytes32 root, uint32 count, bytes32 batchId) external onlyRole(GATEWAY_ROLE) {
        if (root == bytes32(0)) revert AccessLogZeroRoot(batchId);
        if (count == 0) revert AccessLogEmptyBatch(batchId);
        emit BatchAnchored(root, count, batchId, msg.sender);
    }

    /// @inheritdoc IAccessLog
    function checkAccess(bytes32 studyKey, address accessor, uint8 purpose)
        external
        view
        returns (address patient, bytes32 contentRoot, bool permitted, bool identified)
    {
        (patient,, contentRoot,,) = _studyRegistry.studyOf(studyKey);
        (permitted, identified) = _consentRegistry.isPermitted(patient, accessor, studyKey, purpose);
    }

    /// @inheritdoc IAccessLog
    function consentRegistry() external view returns (IConsentRegistry) {
        return _consentRegistry;
    }

    /// @inheritdoc IAccessLog
    function studyRegistry() external view returns (IStudyRegistry) {
        return _studyRegistry;
    }

    /// @inheritdoc IAccessLog
    function recordLeaf(AccessRecord calldata record) external pure returns (bytes32) {
        return keccak256(bytes.concat(keccak256(abi.encode(record))));
    }

    /// @inheritdoc IAccessLog
    function verifyRecord(bytes32 root, bytes32 leaf, bytes32[] calldata proof) external pure returns (bool) {
        return MerkleProof.verifyCalldata(proof, root, leaf);
    }

    /// @dev The study's patient, by `StudyRegistry.patientOf` (one storage slot); reverts with
    /// `StudyRegistryUnknownStudy` for an unknown study. A hand-written static call here saved only
    /// 202 gas per record, so this is the plain interface call.
    function _patientOf(bytes32 studyKey) internal view returns (address patient) {
        patient = _studyRegistry.patientOf(studyKey);
        if (patient == address(0)) revert IStudyRegistry.StudyRegistryUnknownStudy(studyKey);
    }

    /// @dev The `permitted` half of `ConsentRegistry.isPermitted`. A hand-written static call
    /// saved only 287 gas per record, so this is the plain interface call.
    function _isPermitted(address patient, address accessor, bytes32 studyKey, uint8 purpose)
        internal
        view
        returns (bool permitted)
    {
        (permitted,) = _consentRegistry.isPermitted(patient, accessor, studyKey, purpose);
    }
}
